"""The model families qvac_nb knows, in one table.

Everything that differs between SD 1.x, SD 2.x, SDXL, SD3, FLUX.1, FLUX.2 and ESRGAN is a
field here rather than a `family == "..."` branch elsewhere: the network kind (U-Net or
DiT), whether the model reads cfg_scale or distilled guidance, parameter defaults that
differ from the schema's, the engine's step-cache mode, latent channels, the size the
engine rounds to, the text encoders it reads and the companions a split file needs, and
how an init image is used (SDEdit re-noising or FLUX.2 in-context reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

# The engine's sd_cache_mode_t values used by the cache presets.
SD_CACHE_EASYCACHE = 1  # DiT models
SD_CACHE_UCACHE = 2  # U-Net models


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    kind: Literal["unet", "dit", "upscaler", "unknown"]
    uses_guidance: bool = False  # distilled guidance (FLUX) rather than classifier-free cfg_scale
    # Parameter defaults that differ from the schema's for this family.
    defaults: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    latent_channels: int | None = None
    size_multiple: int = 8  # the engine rounds width/height up to this (its latent patch)
    text_encoders: tuple[str, ...] = ()  # model_config companion keys the family reads
    required_companions: tuple[str, ...] = ()  # keys a split (diffusion-only) file cannot load without
    requires_text_encoder: bool = False  # a diffusion-only file needs at least one of its text_encoders
    split_layout: bool = False  # published as a diffusion-model file next to separate encoders and VAE
    img2img: Literal["sdedit", "reference", "none"] = "sdedit"
    hidden: tuple[str, ...] = ()  # parameters the family ignores (the Studio hides them)
    # (marker, defaults): a model whose file or catalogue name contains the marker (any case) is that
    # variant, and its form starts from these defaults too (e.g. FLUX.2 klein is step-distilled: 4 steps).
    variants: tuple[tuple[str, MappingProxyType[str, Any]], ...] = ()

    @property
    def dit(self) -> bool:
        return self.kind == "dit"

    @property
    def cache_mode(self) -> int:
        return SD_CACHE_EASYCACHE if self.dit else SD_CACHE_UCACHE

    def default(self, param: str, fallback: Any) -> Any:
        return self.defaults.get(param, fallback)

    def defaults_for(self, *names: str) -> dict[str, Any]:
        """The family's defaults with those of the variant that `names` (file or catalogue names) belong to."""
        out = dict(self.defaults)
        text = " ".join(names).lower()
        for marker, defaults in self.variants:
            if marker in text:
                out.update(defaults)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "uses_guidance": self.uses_guidance, "dit": self.dit, "defaults": dict(self.defaults),
            "size_multiple": self.size_multiple, "img2img": self.img2img, "hidden": list(self.hidden),
        }


def _d(**values: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


_CFG_ONLY = ("guidance",)  # U-Nets and SD3 have no distilled-guidance input
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sd1", "SD 1.x", "unet", latent_channels=4, size_multiple=64, text_encoders=("clip_l_model_src",),
               hidden=_CFG_ONLY),
        Family("sd2", "SD 2.x", "unet", latent_channels=4, size_multiple=64, hidden=_CFG_ONLY),
        Family("sdxl", "SDXL", "unet", latent_channels=4, size_multiple=64,
               text_encoders=("clip_l_model_src", "clip_g_model_src"), hidden=_CFG_ONLY),
        Family("sd3", "SD3", "dit", latent_channels=16, size_multiple=16,
               text_encoders=("clip_l_model_src", "clip_g_model_src", "t5_xxl_model_src"), requires_text_encoder=True,
               hidden=_CFG_ONLY),
        Family("flux", "FLUX.1", "dit", uses_guidance=True, latent_channels=16, size_multiple=16,
               text_encoders=("clip_l_model_src", "t5_xxl_model_src"), split_layout=True, hidden=("cfg_scale",)),
        # FLUX.2 is cfg-distilled: cfg_scale 1 skips the unconditional pass (twice as fast, same look).
        Family("flux2", "FLUX.2", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0), latent_channels=32,
               size_multiple=16, text_encoders=("llm_model_src",), required_companions=("llm_model_src",
               "vae_model_src"), split_layout=True, img2img="reference", hidden=("strength",),
               variants=(("klein", _d(steps=4)),)),
        Family("esrgan", "ESRGAN", "upscaler", img2img="none"),
    )
}
# Families detected from a file that is not a model to generate or upscale with.
COMPONENT_FAMILIES = ("llm", "vae", "text_encoder")
UNKNOWN = Family("unknown", "unknown", "unknown")


def get(name: str | None) -> Family:
    """The family called `name`; an unknown name gets neutral behaviour (U-Net-like, no guidance)."""
    return FAMILIES.get(name or "", UNKNOWN)


def diffusion_families() -> list[str]:
    return [f.name for f in FAMILIES.values() if f.kind in ("unet", "dit")]
