"""An init image the model can take: FLUX.2 reads it at its own size, which must come in multiples of 16."""

from __future__ import annotations

import io

from PIL import Image

from .. import families
from ..checks.guards import MIN_REF_SIDE
from .thumbs import image_size

REFERENCE_MULTIPLE = 16  # the VAE's 8x down times the 2x2 latent patches


def fit_init(png: bytes, family: str) -> tuple[bytes, str]:
    """`png` resized (down, to the nearest multiple of 16) where the family needs it, and a note saying so."""
    fam = families.get(family)
    if fam.img2img != "reference":
        return png, ""  # SDEdit families scale the init image to the output size themselves
    width, height = image_size(png)
    fit = (max(MIN_REF_SIDE, width - width % REFERENCE_MULTIPLE),
           max(MIN_REF_SIDE, height - height % REFERENCE_MULTIPLE))
    if fit == (width, height):
        return png, ""
    with Image.open(io.BytesIO(png)) as img:
        out = io.BytesIO()
        img.convert("RGB").resize(fit, Image.Resampling.LANCZOS).save(out, format="PNG", compress_level=1)
    note = (f"resized from {width}×{height} to {fit[0]}×{fit[1]}: {fam.label} takes init images in multiples "
            f"of {REFERENCE_MULTIPLE}")
    return out.getvalue(), note
