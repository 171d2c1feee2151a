"""PhotoMaker's inputs to diffusion(): ID images, style strength and (v2) ID embeddings, checked the way the
engine reads them, refusing what would abort it."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from . import families, schema
from .errors import CorruptModelError, InvalidParameterError, InvalidTypeError, QvacError, UnsupportedOperationError
from .images import to_rgb_array
from .loaded_model import LoadedModel
from .modelfiles.reading import check_regular_file, inspect_file

# PhotoMaker in the engine (stable-diffusion.cpp as pinned: stable-diffusion.cpp get_pmid_conditon, pmid.hpp,
# conditioner.hpp). The word it looks for in the prompt, hard-coded; the token before it is the class word.
PM_TRIGGER = "img"
PM_V2_EMBED_DIM = 512  # the face-embedding width PhotoMaker v2's Q-Former takes
PM_IMAGE_SIZE = 224  # the side of the square its CLIP vision tower sees
_LETTERS = re.compile(r"[^\W\d_]+")  # how the CLIP tokenizer splits words: runs of letters
# The U-Net weights PhotoMaker's LoRA is merged into on the first generation with ID images.
_PM_LORA_TARGETS = re.compile(r"attn[12]\.to_(?:q|k|v|out\.0)\.weight$")
# Types the engine can merge a LoRA into; a block type (q4_0, q8_0, K-quants, ...) aborts the process in the
# merge (lora.hpp casts the weight to f32 through a matrix product ggml refuses for block types).
_MERGEABLE = ("f32", "f16", "bf16")
_lora_blockers: dict[str, str | None] = {}  # model id -> the block type of its LoRA targets, if any


def check_inputs(model: LoadedModel, values: dict[str, Any]) -> None:
    """Decode and check pm_id_images and pm_id_embed_path.

    What the engine would abort on, or would turn PhotoMaker off for the rest of the load over, is refused
    here: a model loaded with PhotoMaker that gets no ID images (the engine switches PhotoMaker off at that
    generation after planning its steps with it, and aborts), a prompt without the trigger word, a v2 file
    without valid ID embeddings, LoRA targets it cannot merge into.
    """
    given, embeds = values["pm_id_images"], values["pm_id_embed_path"]
    loaded = "photo_maker" in model.files
    if given is None:
        if loaded:
            raise UnsupportedOperationError(
                "pm_id_images: this model was loaded with model_config['photo_maker_model_src'], so every generation "
                "needs ID images (without them the engine aborts, or turns PhotoMaker off for the rest of the load); "
                "load the model without photo_maker_model_src for generations without an ID", param="pm_id_images")
        if embeds is not None:
            raise InvalidParameterError("pm_id_embed_path: the ID embeddings go with pm_id_images (PhotoMaker v2)",
                                        param="pm_id_embed_path")
        return
    if not loaded:
        raise UnsupportedOperationError("pm_id_images: this model was loaded without a PhotoMaker file; pass "
                                        "model_config={'photo_maker_model_src': ...} to load_model")
    if model.family != "sdxl":
        raise UnsupportedOperationError(f"pm_id_images: PhotoMaker works with SDXL models only, not "
                                        f"{families.get(model.family).label}")
    if isinstance(given, (str, bytes, bytearray)) or not isinstance(given, (list, tuple)):
        raise InvalidTypeError(f"pm_id_images: expected a list of images, got {type(given).__name__}",
                               param="pm_id_images")
    if not 1 <= len(given) <= schema.MAX_PM_ID_IMAGES:
        raise InvalidParameterError(f"pm_id_images: give 1-{schema.MAX_PM_ID_IMAGES} images, got {len(given)}",
                                    param="pm_id_images")
    words = _LETTERS.findall(values["prompt"].lower())
    # The engine asserts the trigger is there once it has fused the IDs, and reads the token before it.
    if PM_TRIGGER not in words[1:]:
        raise InvalidParameterError(
            f"prompt: PhotoMaker needs its trigger word '{PM_TRIGGER}' right after a class word, as in 'a photo of a "
            f"man {PM_TRIGGER}' (or woman, girl, boy)", param="prompt")
    images = [to_rgb_array(f"pm_id_images[{i}]", image) for i, image in enumerate(given)]
    for i, image in enumerate(images):
        height, width = image.shape[:2]
        if not _pm_covers(width, height):
            raise InvalidParameterError(
                f"pm_id_images[{i}]: the engine scales an ID image to cover {PM_IMAGE_SIZE}x{PM_IMAGE_SIZE} before "
                f"cropping it, and for {width}x{height} its float32 arithmetic comes out a pixel short and the process "
                "aborts; crop or pad the image by a pixel", param="pm_id_images")
    values["pm_id_images"] = images
    # The engine's own test: a PhotoMaker file whose path has "v2" in it is PhotoMaker v2.
    if "v2" in str(model.files["photo_maker"]):
        if embeds is None:
            raise InvalidParameterError(
                "pm_id_embed_path: this model's PhotoMaker file is v2, which needs the ID embeddings of the images "
                "(id_embeds.bin, made by the engine's face_detect.py)", param="pm_id_embed_path")
        values["pm_id_embed_path"] = _check_id_embeds(embeds, len(given))
    elif embeds is not None:
        raise InvalidParameterError("pm_id_embed_path: ID embeddings are for PhotoMaker v2; this model's PhotoMaker "
                                    "file is v1 (the engine takes a file with 'v2' in its path for v2)",
                                    param="pm_id_embed_path")
    blocker = lora_blocker(model)
    if blocker is not None:
        raise UnsupportedOperationError(
            f"pm_id_images: PhotoMaker merges its LoRA into the U-Net's attention weights, which the engine cannot do "
            f"for {blocker} weights (the process aborts); load the model with model_config={{'type': 'f16'}}, or "
            "use an f16/f32 checkpoint", param="pm_id_images")


def _pm_covers(width: int, height: int) -> bool:
    """Whether the engine's resize of a width x height ID image covers its vision tower's square (util.cpp
    clip_preprocess: the larger of the two scales, in float32, each side truncated)."""
    side = np.float32(PM_IMAGE_SIZE)
    scale = max(side / np.float32(width), side / np.float32(height))
    return min(int(scale * np.float32(width)), int(scale * np.float32(height))) >= PM_IMAGE_SIZE


def lora_blocker(model: LoadedModel) -> str | None:
    """The block type of the U-Net weights PhotoMaker's LoRA would be merged into, or None when all merge."""
    if model.model_id not in _lora_blockers:
        wanted = model.config.get("type")  # the engine converts the weights to it at load
        if wanted:
            found = None if str(wanted).lower() in _MERGEABLE else str(wanted)
        else:
            try:
                dtypes = inspect_file(model.files[model.role]).dtypes
            except QvacError:
                dtypes = {}  # it loaded, so it was sound; a file changed since must not block generating
            found = next((t.lower() for name, t in dtypes.items()
                          if _PM_LORA_TARGETS.search(name) and t.lower() not in _MERGEABLE), None)
        _lora_blockers[model.model_id] = found
    return _lora_blockers[model.model_id]


def _check_id_embeds(source: str, count: int) -> str:
    """The ID-embeddings file as the engine reads it (sd::load_tensor_from_file_as_tensor): int32 dims, name
    length and type (0: f32), the dims fastest first, the name, then the floats; (512, count) for v2."""
    path = check_regular_file(Path(source).expanduser(), "pm_id_embed_path")
    bad = f"pm_id_embed_path: {path} is not an ID-embeddings file"
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            raise CorruptModelError(f"{bad} (too short)", param="pm_id_embed_path")
        n_dims, name_len, ttype = struct.unpack("<3i", head)
        # The engine reads the second dim as the image count: a 1-D file would be read past its shape.
        if not 2 <= n_dims <= 4 or not 0 <= name_len <= 4096 or ttype != 0:
            raise CorruptModelError(f"{bad} of float32 values (dims, embedding count)", param="pm_id_embed_path")
        dims = struct.unpack(f"<{n_dims}i", f.read(4 * n_dims).ljust(4 * n_dims, b"\0"))
    if min(dims) < 1 or path.stat().st_size < 12 + 4 * n_dims + name_len + 4 * math.prod(dims):
        raise CorruptModelError(f"{bad} (truncated, or a bad shape {list(dims)})", param="pm_id_embed_path")
    if dims[0] != PM_V2_EMBED_DIM or dims[1] != count or math.prod(dims[2:]) != 1:
        raise InvalidParameterError(
            f"pm_id_embed_path: holds embeddings of shape {list(dims)}, but pm_id_images has {count} image(s), each "
            f"needing one embedding of {PM_V2_EMBED_DIM} values (run face_detect.py on these images)",
            param="pm_id_embed_path")
    return str(path)
