"""Companion files: a VAE, LLM or text encoder must fit the family of the model it goes with."""

from __future__ import annotations

from .. import families
from ..errors import UnsupportedOperationError
from .families import _DIT_PREFIXES, _strip, llm_geometry, vae_latent_channels
from .formats import FileInfo

# ---------------------------------------------------------------- companions

_LATENT_NAMES = {4: "SD 1.x/2.x/XL", 16: "SD3/FLUX.1", 32: "FLUX.2"}
_TEXT_KEYS = ("clip_l_model_src", "clip_g_model_src", "t5_xxl_model_src", "llm_model_src")


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


def _check_llm_fits(primary: FileInfo, role: str, llm: FileInfo) -> None:
    """FLUX.2's txt_in reads the LLM's hidden states; a mismatch aborts in a matrix product."""
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
