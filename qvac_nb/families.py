"""The model families qvac_nb knows, in one table.

Everything that differs between SD 1.x, SD 2.x, SDXL, SD3, FLUX.1, FLUX.2 and ESRGAN is a
field here rather than a `family == "..."` branch elsewhere: the network kind (U-Net or
DiT), whether the model reads cfg_scale or distilled guidance, parameter defaults that
differ from the schema's, the engine's step-cache mode, latent channels, the size the
engine rounds to, the text encoders it reads and the companions a split file needs, and
how an init image is used (SDEdit re-noising, FLUX.2 in-context reference, FLUX.1 Kontext edit).

Which family a file is comes from its tensors (qvac_nb/modelfiles/families.py decides it the way
the engine decides its version); FLUX.1 Kontext has FLUX.1 dev's tensors and is told by its name,
Qwen-Image-Edit likewise (or, for 2511, by a marker tensor).
A model whose version the engine runs but which has no row here gets neutral behaviour (`get`).
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
    # Width and height come in multiples of this: the engine's spatial multiple, its VAE's scale factor
    # times the network's down factor (U-Nets 8 x 8; DiTs 8 x 1; FLUX.2 and ERNIE-Image's VAE 16 x 1).
    # Any other size the engine would silently round up, so validation, the form's snapping and every
    # suggested size use this one number.
    size_multiple: int = 8
    text_encoders: tuple[str, ...] = ()  # model_config companion keys the family reads
    required_companions: tuple[str, ...] = ()  # keys a split (diffusion-only) file cannot load without
    requires_text_encoder: bool = False  # a diffusion-only file needs at least one of its text_encoders
    split_layout: bool = False  # published as a diffusion-model file next to separate encoders and VAE
    # How init_image is used: "sdedit" re-noises it (with mask_image: inpainting), "reference" is FLUX.2's
    # in-context conditioning (needs prediction 'flux2_flow'), "edit" hands it to the engine as a reference
    # image to edit (FLUX.1 Kontext), "none": no init image.
    img2img: Literal["sdedit", "reference", "edit", "none"] = "sdedit"
    inpaints: bool = False  # the network itself reads init_image and mask_image (FLUX.1 Fill): give both
    hidden: tuple[str, ...] = ()  # parameters the family ignores (the Studio hides them)
    # (marker, defaults): a model whose file or catalogue name contains the marker (any case) is that
    # variant, and its form starts from these defaults too (e.g. FLUX.2 klein is step-distilled: 4 steps).
    variants: tuple[tuple[str, MappingProxyType[str, Any]], ...] = ()

    @property
    def dit(self) -> bool:
        return self.kind == "dit"

    @property
    def init_as_reference(self) -> bool:
        """init_image goes to the engine's reference images, not its init image."""
        return self.img2img in ("reference", "edit")

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
            "size_multiple": self.size_multiple, "img2img": self.img2img, "inpaints": self.inpaints,
            "hidden": list(self.hidden), "text_encoders": list(self.text_encoders),
            "required_companions": list(self.required_companions),
        }


def _d(**values: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


_CFG_ONLY = ("guidance",)  # U-Nets and SD3 have no distilled-guidance input
_FLUX1_TEXT = ("clip_l_model_src", "t5_xxl_model_src")
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sd1", "SD 1.x", "unet", latent_channels=4, size_multiple=64, text_encoders=("clip_l_model_src",),
               hidden=_CFG_ONLY),
        Family("sd2", "SD 2.x", "unet", latent_channels=4, size_multiple=64, hidden=_CFG_ONLY),
        Family("sdxl", "SDXL", "unet", latent_channels=4, size_multiple=64,
               text_encoders=("clip_l_model_src", "clip_g_model_src"), hidden=_CFG_ONLY),
        Family("sd3", "SD3", "dit", latent_channels=16, size_multiple=8,
               text_encoders=("clip_l_model_src", "clip_g_model_src", "t5_xxl_model_src"), requires_text_encoder=True,
               hidden=_CFG_ONLY),
        # FLUX.1 dev and schnell are guidance-distilled: the engine docs run them at cfg_scale 1 (one pass per
        # step); dev reads distilled guidance (3.5, the schema's default), schnell is step-distilled too.
        # Without T5 the engine feeds zeros for it (and without CLIP-L for the pooled vector), so either loads.
        Family("flux", "FLUX.1", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0), latent_channels=16,
               size_multiple=8, text_encoders=_FLUX1_TEXT, required_companions=("vae_model_src",),
               requires_text_encoder=True, split_layout=True, hidden=("cfg_scale",),
               variants=(("schnell", _d(steps=4)),)),
        # FLUX.1 Kontext (dev): FLUX.1 dev's network trained to edit the image given as a reference.
        # kontext.md: cfg_scale 1; guidance 2.5 is BFL's recommendation for it. init_image is the image
        # to edit (the engine's ref_images), so strength does not apply.
        Family("flux_kontext", "FLUX.1 Kontext", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0, guidance=2.5),
               latent_channels=16, size_multiple=8, text_encoders=_FLUX1_TEXT, required_companions=("vae_model_src",),
               requires_text_encoder=True, split_layout=True, img2img="edit", hidden=("cfg_scale", "strength")),
        # FLUX.1 Fill (dev): inpainting/outpainting; the network reads the masked image and the mask next to
        # the latent. BFL runs it at guidance 30; strength 1 repaints the masked area from noise.
        Family("flux_fill", "FLUX.1 Fill", "dit", uses_guidance=True,
               defaults=_d(cfg_scale=1.0, guidance=30.0, strength=1.0), latent_channels=16, size_multiple=8,
               text_encoders=_FLUX1_TEXT, required_companions=("vae_model_src",), requires_text_encoder=True,
               split_layout=True, inpaints=True, hidden=("cfg_scale",)),
        # Chroma: FLUX.1 schnell's network with its modulations pruned into one approximator. Not
        # guidance-distilled: real cfg with a negative prompt (chroma.md: cfg_scale 4); the engine sets its
        # guidance input to 0, so `guidance` does nothing. T5 is its only text encoder; without one the
        # engine generates from an empty condition (it warns), as for FLUX.1.
        Family("chroma", "Chroma", "dit", defaults=_d(cfg_scale=4.0), latent_channels=16, size_multiple=8,
               text_encoders=("t5_xxl_model_src",), required_companions=("vae_model_src",), split_layout=True,
               hidden=("guidance",)),
        # FLUX.2 is cfg-distilled: cfg_scale 1 skips the unconditional pass (twice as fast, same look).
        Family("flux2", "FLUX.2", "dit", uses_guidance=True, defaults=_d(cfg_scale=1.0), latent_channels=32,
               size_multiple=16, text_encoders=("llm_model_src",), required_companions=("llm_model_src",
               "vae_model_src"), split_layout=True, img2img="reference", hidden=("strength",),
               variants=(("klein", _d(steps=4)),)),
        # Qwen-Image: an MMDiT conditioned on Qwen2.5-VL-7B's last hidden states, decoded by the Wan 2.1 VAE.
        # Real cfg (qwen_image.md: cfg_scale 2.5 with euler and flow shift 3, which are already the engine's
        # own choices for it); no distilled-guidance input.
        Family("qwen_image", "Qwen-Image", "dit", defaults=_d(cfg_scale=2.5), latent_channels=16, size_multiple=8,
               text_encoders=("llm_model_src",), required_companions=("llm_model_src", "vae_model_src"),
               split_layout=True, hidden=("guidance",)),
        # Qwen-Image-Edit (2509, 2511): Qwen-Image's network trained to edit the image given as a reference
        # (the engine's ref_images), so strength does not apply; same settings in qwen_image_edit.md. With
        # model_config llm_vision_model_src the LLM also sees the image; without it the engine edits from the
        # image's latent alone. 2511 needs the engine's zero_cond_t, which its marker tensor switches on.
        Family("qwen_image_edit", "Qwen-Image-Edit", "dit", defaults=_d(cfg_scale=2.5), latent_channels=16,
               size_multiple=8, text_encoders=("llm_model_src",), required_companions=("llm_model_src",
               "vae_model_src"), split_layout=True, img2img="edit", hidden=("guidance", "strength")),
        # Z-Image: a single-stream DiT reading Qwen3-4B, with FLUX.1's VAE. Turbo (the published default) is
        # step- and cfg-distilled: 8 steps at cfg_scale 1 (z_image.md; Tongyi's 8 function evaluations). Base
        # takes real cfg (z_image.md: 5) and more steps (Tongyi's 28-50; 28 here). Both have the same tensors,
        # so only a name tells Base (Z-Image-Base, z_image_base: "base" alone would match folder names too);
        # any other Z-Image file starts from Turbo's settings.
        Family("zimage", "Z-Image", "dit", defaults=_d(cfg_scale=1.0, steps=8), latent_channels=16, size_multiple=8,
               text_encoders=("llm_model_src",), required_companions=("llm_model_src", "vae_model_src"),
               split_layout=True, hidden=("guidance",),
               variants=tuple((marker, _d(cfg_scale=5.0, steps=28)) for marker in ("image-base", "image_base"))),
        Family("esrgan", "ESRGAN", "upscaler", img2img="none"),
    )
}
# Families detected from a file that is not a model to generate or upscale with.
COMPONENT_FAMILIES = ("llm", "vae", "text_encoder")
UNKNOWN = Family("unknown", "unknown", "unknown")
# Families the engine runs (it detects their version) that have no row above yet: name -> (label, kind).
# They load and generate with neutral behaviour: the schema's defaults, every parameter shown.
ENGINE_ONLY: dict[str, tuple[str, Literal["unet", "dit"]]] = {
    "svd": ("SVD", "unet"),
    "flux_controls": ("FLUX.1 Controls", "dit"),
    "flex2": ("Flex.2", "dit"),
    "chroma_radiance": ("Chroma Radiance", "dit"),
    "wan": ("Wan", "dit"),
    "anima": ("Anima", "dit"),
    "ovis_image": ("Ovis-Image", "dit"),
    "ernie_image": ("ERNIE-Image", "dit"),
}


def get(name: str | None) -> Family:
    """The family called `name`; one without a row gets neutral behaviour (no defaults, no guidance).

    A family the engine runs keeps its label and network kind (so DiTs get the DiT step cache);
    any other name is `UNKNOWN`.
    """
    family = FAMILIES.get(name or "")
    if family is not None:
        return family
    if name in ENGINE_ONLY:
        label, kind = ENGINE_ONLY[name]
        return Family(name, label, kind)
    return UNKNOWN


def diffusion_families() -> list[str]:
    return [f.name for f in FAMILIES.values() if f.kind in ("unet", "dit")]
