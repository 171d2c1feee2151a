"""Companion files: a VAE, LLM or text encoder must fit the family of the model it goes with."""

from __future__ import annotations

from .. import families
from ..errors import UnsupportedOperationError
from .detection import _DIT_PREFIXES, TAE_VERSIONS, _strip, is_wan_vae, llm_geometry, vae_latent_channels
from .formats import FileInfo

# ---------------------------------------------------------------- companions

_LATENT_NAMES = {4: "SD 1.x/2.x/XL", 16: "SD3/FLUX.1", 32: "FLUX.2"}
_TEXT_KEYS = ("clip_l_model_src", "clip_g_model_src", "t5_xxl_model_src", "llm_model_src")
# Families whose engine VAE is the Wan one (wan.hpp), not the SD/FLUX autoencoder.
_WAN_VAE_FAMILIES = ("qwen_image", "qwen_image_edit", "wan", "anima")
# DiTs that read an LLM's hidden states whole, and the weight whose input width must equal the LLM's.
_LLM_INPUTS = {"qwen_image": "txt_in.weight", "qwen_image_edit": "txt_in.weight", "zimage": "cap_embedder.1.weight"}
# Ovis-Image's txt_in and ERNIE-Image's text_proj read the LLM's last hidden states too. (An ERNIE-Image
# DiT as wide as its LLM has no text_proj; none is published.)
_LLM_INPUTS.update({"ovis_image": "txt_in.weight", "ernie_image": "text_proj.weight"})
# Anima's LLM adapter cross-attends to the LLM's output: its keys are made from LLM-wide features. The file
# names its tensors with or without the "net." the engine adds.
_ANIMA_LLM_INPUT = "llm_adapter.blocks.0.cross_attn.k_proj.weight"


def check_companion(primary: FileInfo, key: str, companion: FileInfo) -> None:
    """Refuse a companion file that does not belong with `primary`'s family (UnsupportedOperationError)."""
    # The family table says what each family reads; a family without a row (one only the engine knows)
    # gets the kind checks alone.
    family = families.FAMILIES.get(primary.family)
    name = family.label if family else primary.family
    role = f"model_config.{key}"
    kind = companion.family
    if key == "vae_model_src":
        if kind != "vae":
            raise UnsupportedOperationError(f"{role}: {companion.path.name} is a {kind} file, not a VAE")
        if primary.detection.version in TAE_VERSIONS:
            # The engine files a VAE's tensors under the tiny autoencoder's names for SDXS, where nothing reads
            # them: the image would not change.
            raise UnsupportedOperationError(
                f"{role}: {primary.path.name} is an {primary.detection.engine_label} model, which decodes with the "
                "tiny autoencoder in its own file; the engine ignores another VAE for it, leave it out")
        _check_vae_kind(primary, role, companion, name)
        z = vae_latent_channels(companion)
        want = family.latent_channels if family else None
        if want is not None and z != want:
            raise UnsupportedOperationError(
                f"{role}: {companion.path.name} is a VAE for {_LATENT_NAMES.get(z or 0, f'{z}-channel')} latents, "
                f"but {primary.path.name} is a {name} model, which needs a {_LATENT_NAMES[want]} VAE"
            )
    elif key in _TEXT_KEYS:
        if family is not None and key not in family.text_encoders:
            raise UnsupportedOperationError(f"{role}: {name} models do not use this text encoder; leave it out")
        if key == "llm_model_src":
            if kind != "llm":
                raise UnsupportedOperationError(f"{role}: {companion.path.name} is a {kind} file, not an LLM")
            _check_llm_fits(primary, role, companion)
        elif kind not in ("text_encoder", "unknown"):
            raise UnsupportedOperationError(f"{role}: {companion.path.name} is a {kind} file, not a text encoder")


def _check_vae_kind(primary: FileInfo, role: str, vae: FileInfo, name: str) -> None:
    """The engine builds the Wan VAE for some families, the SD/FLUX autoencoder for others; neither loads the other."""
    wan = is_wan_vae(vae.tensors)
    if primary.family in _WAN_VAE_FAMILIES and not wan:
        raise UnsupportedOperationError(
            f"{role}: {vae.path.name} is an SD/FLUX-style VAE, but {primary.path.name} is a {name} model, which "
            "decodes with the Wan VAE (for Qwen-Image: qwen_image_vae.safetensors)"
        )
    if wan and primary.family not in _WAN_VAE_FAMILIES:
        raise UnsupportedOperationError(
            f"{role}: {vae.path.name} is a Wan VAE (Wan, Qwen-Image), but {primary.path.name} is a {name} model, "
            "which needs an SD/FLUX-style VAE"
        )


def _check_llm_fits(primary: FileInfo, role: str, llm: FileInfo) -> None:
    """The DiT reads the LLM's hidden states; a width mismatch aborts in a matrix product."""
    if primary.family in _LLM_INPUTS:
        _check_llm_width(primary, role, llm, _LLM_INPUTS[primary.family])
        return
    if primary.family == "anima":
        net = any(name.startswith(("net.", "model.diffusion_model.net.")) for name in primary.tensors)
        _check_llm_width(primary, role, llm, ("net." if net else "") + _ANIMA_LLM_INPUT)
        return
    if primary.family != "flux2":
        return
    geometry = llm_geometry(llm)
    txt_in = _strip(primary, _DIT_PREFIXES).get("txt_in.weight")
    if geometry is None or txt_in is None:
        return
    layers, hidden = geometry
    # Klein stacks the hidden states after layers 9, 18 and 27; a shallower LLM gives its last one.
    width = 3 * hidden if layers > 27 else hidden
    if txt_in[1] != width:
        raise UnsupportedOperationError(
            f"{role}: {llm.path.name} gives {width}-wide text features but {primary.path.name} reads "
            f"{txt_in[1]}-wide ones; use the LLM this FLUX.2 model was trained with"
        )


def _check_llm_width(primary: FileInfo, role: str, llm: FileInfo, input_weight: str) -> None:
    """Qwen-Image and Z-Image read one layer's hidden states, as wide as the LLM (Qwen2.5-VL-7B 3584, Qwen3-4B 2560)."""
    geometry = llm_geometry(llm)
    weight = _strip(primary, _DIT_PREFIXES).get(input_weight)
    if geometry is None or weight is None or len(weight) != 2:
        return
    if weight[1] != geometry[1]:
        raise UnsupportedOperationError(
            f"{role}: {llm.path.name} gives {geometry[1]}-wide text features but {primary.path.name} reads "
            f"{weight[1]}-wide ones; use the LLM this model was trained with"
        )
