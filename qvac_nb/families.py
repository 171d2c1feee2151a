"""The model families qvac_nb knows, in one table.

Everything that differs between SD 1.x, SD 2.x, SDXL, SD3, FLUX.1, FLUX.2 and ESRGAN is a
field here rather than a `family == "..."` branch elsewhere: the network kind (U-Net or
DiT), whether the model reads cfg_scale or distilled guidance, parameter defaults that
differ from the schema's, the engine's step-cache mode, latent channels, the size the
engine rounds to, the text encoders it reads and the companions a split file needs, and
how an init image is used (SDEdit re-noising, FLUX.2 in-context reference, FLUX.1 Kontext edit).

Which family a file is comes from its tensors (qvac_nb/modelfiles/detection.py decides it the way
the engine decides its version); FLUX.1 Kontext has FLUX.1 dev's tensors and is told by its name,
Qwen-Image-Edit likewise (or, for 2511, by a marker tensor).
A model whose version the engine runs but which has no row here gets neutral behaviour (`get`).
Within a family, a `Variant` row holds what differs for a model the engine runs as a version of its
own (SD 1.x instruct-pix2pix, SDXS, ...) or that a name marks (FLUX.2 klein); `for_model` gives a
loaded model's row with its variant's settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

# The engine's sd_cache_mode_t values used by the cache presets.
SD_CACHE_EASYCACHE = 1  # DiT models
SD_CACHE_UCACHE = 2  # U-Net models


Img2Img = Literal["sdedit", "reference", "edit", "pix2pix", "none"]
# Parameters the engine reads for a few models only: hidden unless a family or variant lists them in `shows`.
# The engine replaces img_cfg_scale with cfg_scale except for inpainting and instruct-pix2pix U-Nets
# (and FLUX control models): stable-diffusion.cpp resolve_guidance, sd_version_is_inpaint_or_unet_edit.
OPT_IN_PARAMS = ("img_cfg_scale",)


@dataclass(frozen=True)
class Variant:
    """A kind of model within a family: its own engine version, or a name marking other defaults.

    A variant with `versions` is the model whose engine version (Detection.version) is one of them;
    when the version is not known (a catalogue name before download) its `marker` stands in. A
    variant without versions is told by its marker alone: a file or catalogue name containing it
    (any case). None in img2img, inpaints or hidden keeps the family's setting.
    """

    name: str
    label: str = ""
    versions: tuple[str, ...] = ()
    marker: str = ""
    defaults: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    img2img: Img2Img | None = None
    inpaints: bool | None = None
    hidden: tuple[str, ...] | None = None
    shows: tuple[str, ...] = ()  # OPT_IN_PARAMS this variant reads

    def matches(self, version: str | None, text: str) -> bool:
        """Whether a model of engine `version` (None: unknown) named `text` (lower case) is this variant."""
        if self.versions and version is not None:
            return version in self.versions
        return bool(self.marker) and self.marker in text


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
    # image to edit (FLUX.1 Kontext), "pix2pix" likewise to an instruct-pix2pix U-Net, whose image guidance
    # (img_cfg_scale) says how closely to keep it, "none": no init image.
    img2img: Img2Img = "sdedit"
    inpaints: bool = False  # the network itself reads init_image and mask_image (FLUX.1 Fill): give both
    hidden: tuple[str, ...] = ()  # parameters the family ignores (the Studio hides them)
    shows: tuple[str, ...] = ()  # OPT_IN_PARAMS the family reads (every other one is hidden too)
    # Variant rows, or (marker, defaults) pairs: a model whose file or catalogue name contains the marker
    # (any case) is that variant, and its form starts from these defaults too (e.g. FLUX.2 klein is
    # step-distilled: 4 steps). A Variant can also be told by the engine version (SD 1.x instruct-pix2pix).
    variants: tuple[Variant | tuple[str, MappingProxyType[str, Any]], ...] = ()
    variant: str = ""  # the Variant a resolved row (see `resolve`) carries the settings of; "" for the family
    makes: Literal["image", "video"] = "image"  # video families load with mode='video' and run video()

    @property
    def dit(self) -> bool:
        return self.kind == "dit"

    @property
    def init_as_reference(self) -> bool:
        """init_image goes to the engine's reference images, not its init image."""
        return self.img2img in ("reference", "edit", "pix2pix")

    @property
    def cache_mode(self) -> int:
        return SD_CACHE_EASYCACHE if self.dit else SD_CACHE_UCACHE

    def default(self, param: str, fallback: Any) -> Any:
        return self.defaults.get(param, fallback)

    @property
    def variant_rows(self) -> tuple[Variant, ...]:
        """`variants` as Variant rows ((marker, defaults) pairs become marker-only variants)."""
        return tuple(v if isinstance(v, Variant) else Variant(v[0], marker=v[0], defaults=v[1])
                     for v in self.variants)

    @property
    def hidden_params(self) -> tuple[str, ...]:
        """What the Studio hides: `hidden`, and the OPT_IN_PARAMS the family does not show."""
        return self.hidden + tuple(p for p in OPT_IN_PARAMS if p not in self.shows and p not in self.hidden)

    def defaults_for(self, *names: str, version: str | None = None) -> dict[str, Any]:
        """The family's defaults with those of the variant(s) a model of engine `version` named `names` is."""
        out = dict(self.defaults)
        text = " ".join(names).lower()
        for v in self.variant_rows:
            if v.matches(version, text):
                out.update(v.defaults)
        return out

    def resolve(self, version: str | None = None, *names: str) -> Family:
        """This family as a model of it runs: with the settings of the variant its engine version or names make it.

        The first matching variant gives label, img2img, inpaints, hidden and shows; the defaults of every
        matching one apply (as in `defaults_for`). No match: the family itself.
        """
        text = " ".join(names).lower()
        chosen = next((v for v in self.variant_rows if v.matches(version, text)), None)
        if chosen is None:
            return self
        return self._with(chosen, self.defaults_for(*names, version=version))

    def _with(self, v: Variant, defaults: dict[str, Any]) -> Family:
        return dataclasses.replace(
            self, label=v.label or self.label, defaults=MappingProxyType(defaults), img2img=v.img2img or self.img2img,
            inpaints=self.inpaints if v.inpaints is None else v.inpaints,
            hidden=self.hidden if v.hidden is None else v.hidden, shows=self.shows + v.shows, variant=v.name,
            variants=())  # a resolved row is one model's: the family's other variants are not its own

    def as_json(self) -> dict[str, Any]:
        """What the Studio's form reads; "variants" holds each variant's settings in the same keys, resolved."""
        out = self._json()
        out["variants"] = {}
        for v in self.variant_rows:
            row = self._with(v, {**self.defaults, **v.defaults})._json()
            out["variants"][v.name] = {key: row[key] for key in _VARIANT_JSON} | {
                "versions": list(v.versions), "marker": v.marker}
        return out

    def _json(self) -> dict[str, Any]:
        return {
            "label": self.label, "uses_guidance": self.uses_guidance, "dit": self.dit, "defaults": dict(self.defaults),
            "size_multiple": self.size_multiple, "img2img": self.img2img, "inpaints": self.inpaints,
            "hidden": list(self.hidden_params), "text_encoders": list(self.text_encoders),
            "required_companions": list(self.required_companions), "variant": self.variant, "makes": self.makes,
        }


# The as_json keys a variant can change.
_VARIANT_JSON = ("label", "defaults", "img2img", "inpaints", "hidden")


def _d(**values: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


_CFG_ONLY = ("guidance",)  # U-Nets and SD3 have no distilled-guidance input


# The U-Net variants the engine runs as versions of their own (model.cpp get_sd_version builds each from
# the first conv's input channels and the blocks present; unet.hpp sizes it by version). Each is chosen by
# that version; its marker stands in while the version is unknown (a catalogue name, a split U-Net file).
def _inpaint(version: str, label: str) -> Variant:
    """9 input channels: the network reads the mask and the masked image beside the latent, and takes image
    guidance (img_cfg_scale; unset, the engine uses cfg_scale). The engine keeps its own defaults for them."""
    return Variant("inpaint", label, versions=(version,), marker="inpaint", inpaints=True, shows=("img_cfg_scale",))


def _pix2pix(version: str, label: str) -> Variant:
    """8 input channels: the network reads the latent of the image to edit, which the engine takes as its
    reference image (not re-noised, so strength does not apply); img_cfg_scale says how closely to keep it."""
    return Variant("pix2pix", label, versions=(version,), marker="pix2pix", img2img="pix2pix",
                   hidden=(*_CFG_ONLY, "strength"), shows=("img_cfg_scale",))


def _sdxs(version: str, label: str) -> Variant:
    """One-step distilled; distilled_sd.md runs both SDXS models at 1 step and cfg_scale 1 ("mandatory").
    They decode with the tiny autoencoder inside the file."""
    return Variant("sdxs", label, versions=(version,), marker="sdxs", defaults=_d(steps=1, cfg_scale=1.0))


_FLUX1_TEXT = ("clip_l_model_src", "t5_xxl_model_src")
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sd1", "SD 1.x", "unet", latent_channels=4, size_multiple=64, text_encoders=("clip_l_model_src",),
               hidden=_CFG_ONLY, variants=(
                   _inpaint("SD1_INPAINT", "SD 1.x inpainting"), _pix2pix("SD1_PIX2PIX", "SD 1.x instruct-pix2pix"),
                   Variant("tiny_unet", "SD 1.x tiny U-Net", versions=("SD1_TINY_UNET",)),
                   _sdxs("SDXS_512_DS", "SDXS-512 DreamShaper"))),
        Family("sd2", "SD 2.x", "unet", latent_channels=4, size_multiple=64, hidden=_CFG_ONLY, variants=(
            _inpaint("SD2_INPAINT", "SD 2.x inpainting"),
            Variant("tiny_unet", "SD 2.x tiny U-Net", versions=("SD2_TINY_UNET",)),
            _sdxs("SDXS_09", "SDXS-512-0.9"))),
        Family("sdxl", "SDXL", "unet", latent_channels=4, size_multiple=64,
               text_encoders=("clip_l_model_src", "clip_g_model_src"), hidden=_CFG_ONLY, variants=(
                   _inpaint("SDXL_INPAINT", "SDXL inpainting"), _pix2pix("SDXL_PIX2PIX", "SDXL instruct-pix2pix"),
                   Variant("vega", "Segmind Vega", versions=("SDXL_VEGA",)),
                   Variant("ssd1b", "SSD-1B", versions=("SDXL_SSD1B",)))),
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
        # Ovis-Image: FLUX.1's DiT with gated MLPs, reading Ovis 2.5's LLM (a Qwen3) through an RMSNorm, with
        # FLUX.1's VAE. No pooled text and no distilled-guidance input: real cfg (ovis_image.md: cfg_scale 5);
        # euler, the discrete schedule and the FLUX flow shift (1.0 without guidance_in) are the engine's own.
        Family("ovis_image", "Ovis-Image", "dit", defaults=_d(cfg_scale=5.0), latent_channels=16, size_multiple=8,
               text_encoders=("llm_model_src",), required_companions=("llm_model_src", "vae_model_src"),
               split_layout=True, hidden=("guidance",)),
        # ERNIE-Image: a single-stream DiT reading Ministral 3 (3B), with FLUX.2's VAE. ernie_image.md runs it at
        # cfg_scale 5 (the schema's 20 steps) and Turbo, distilled from it, at 8 steps and cfg_scale 1. Turbo has
        # the same tensors: only its name tells it. Euler, the discrete schedule and flow shift 4 are the engine's.
        Family("ernie_image", "ERNIE-Image", "dit", defaults=_d(cfg_scale=5.0), latent_channels=32,
               size_multiple=16, text_encoders=("llm_model_src",), required_companions=("llm_model_src",
               "vae_model_src"), split_layout=True, hidden=("guidance",),
               variants=(("turbo", _d(cfg_scale=1.0, steps=8)),)),
        # Anima: a Cosmos-Predict2 DiT whose LLM adapter turns Qwen3-0.6B's output (and the prompt's T5 token
        # ids) into its context, with the Qwen-Image (Wan 2.1) VAE. anima.md: cfg_scale 6 with euler, which like
        # flow shift 3 is already the engine's own choice for it.
        Family("anima", "Anima", "dit", defaults=_d(cfg_scale=6.0), latent_channels=16, size_multiple=8,
               text_encoders=("llm_model_src",), required_companions=("llm_model_src", "vae_model_src"),
               split_layout=True, hidden=("guidance",)),
        Family("esrgan", "ESRGAN", "upscaler", img2img="none"),
    )
}
# Video families: loaded with mode='video', run by video() (qvac_nb.video), kept apart from the image
# families' lists (the Studio's image form, diffusion()'s per-family defaults).
# Wan (docs/wan.md): UMT5-XXL as t5xxl plus the Wan VAE; every example runs euler at cfg 6 with flow shift 3
# (the A14B pair: cfg 3.5, 10 steps, 8 of them on the high-noise expert). The VAE scales by 8 and the DiT
# patches 2x2, so sides are multiples of 16; Wan 2.2 TI2V's VAE scales by 16 (multiples of 32). Wan 2.1 makes
# 16 frames a second, 2.2 TI2V 24.
VIDEO_FAMILIES: dict[str, Family] = {
    "wan": Family("wan", "Wan", "dit", defaults=_d(cfg_scale=6.0, flow_shift=3.0, sampling_method="euler", fps=16),
                  latent_channels=16, size_multiple=16, text_encoders=("t5_xxl_model_src",),
                  required_companions=("t5_xxl_model_src", "vae_model_src"), split_layout=True,
                  hidden=("guidance",), makes="video",
                  variants=(Variant("ti2v", "Wan 2.2 TI2V", versions=("WAN2_2_TI2V",), marker="ti2v",
                                    defaults=_d(fps=24)),
                            Variant("i2v_a14b", "Wan 2.2 I2V A14B", versions=("WAN2_2_I2V",), marker="i2v-a14b",
                                    defaults=_d(cfg_scale=3.5, steps=10, high_noise_steps=8)))),
}
# Families detected from a file that is not a model to generate or upscale with.
COMPONENT_FAMILIES = ("llm", "vae", "text_encoder", "vision_encoder")
UNKNOWN = Family("unknown", "unknown", "unknown")
# Families the engine runs (it detects their version) that have no row above yet: name -> (label, kind).
# They load and generate with neutral behaviour: the schema's defaults, every parameter shown.
ENGINE_ONLY: dict[str, tuple[str, Literal["unet", "dit"]]] = {
    "svd": ("SVD", "unet"),
    "flux_controls": ("FLUX.1 Controls", "dit"),
    "flex2": ("Flex.2", "dit"),
    "chroma_radiance": ("Chroma Radiance", "dit"),
}


def get(name: str | None) -> Family:
    """The family called `name`; one without a row gets neutral behaviour (no defaults, no guidance).

    A family the engine runs keeps its label and network kind (so DiTs get the DiT step cache);
    any other name is `UNKNOWN`.
    """
    family = FAMILIES.get(name or "") or VIDEO_FAMILIES.get(name or "")
    if family is not None:
        return family
    if name in ENGINE_ONLY:
        label, kind = ENGINE_ONLY[name]
        return Family(name, label, kind)
    return UNKNOWN


class ModelLike(Protocol):
    """What `for_model` reads of a loaded model (qvac_nb.models.LoadedModel, the worker's OpenModel)."""

    @property
    def family(self) -> str: ...


def for_model(model: ModelLike) -> Family:
    """A loaded model's family row with the settings of its variant (qvac_nb.models.LoadedModel or alike).

    The variant follows the engine version of the model's file (an instruct-pix2pix U-Net takes
    init_image as its reference image, SDXS starts from 1 step); a variant told by name (FLUX.2
    klein) follows its file and catalogue names.
    """
    files = getattr(model, "files", {})
    names = (str(getattr(model, "source", "")), *(Path(p).name for p in files.values()))
    return get(model.family).resolve(getattr(model, "version", None), *names)


def diffusion_families() -> list[str]:
    return [f.name for f in FAMILIES.values() if f.kind in ("unet", "dit")]
