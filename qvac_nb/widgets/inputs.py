"""The Studio's extra inputs, kept in the kernel: image slots (FLUX.2 reference images, a control image),
the painted inpainting mask, and the LoRA files it offers.

Full-size bytes stay here; the widget state only carries thumbnails (`ImageSlots.trait`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import traitlets as t
from PIL import Image

from .. import families
from ..errors import InvalidParameterError
from .family_form import rules_for
from .thumbs import image_size, thumbnail

LORA_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt")
DEFAULT_LORA_FOLDER = "loras"  # beside the notebook, like the history folder
SLOT_LIMITS = {"ref_images": 8, "control_image": 1, "end_image": 1}
MAX_LORA_FILES = 500  # a picker, not a file browser: a huge folder is cut, not walked for minutes


@dataclass(frozen=True)
class SlotImage:
    name: str
    data: bytes
    width: int
    height: int
    thumb: bytes


class ImageSlots:
    """Named lists of uploaded images, each with a maximum count."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = dict(limits)
        self.images: dict[str, list[SlotImage]] = {slot: [] for slot in limits}

    def _slot(self, slot: Any) -> list[SlotImage]:
        if slot not in self.images:
            raise InvalidParameterError(f"slot: expected one of {', '.join(self.images)}, got {slot!r}")
        return self.images[slot]

    def add(self, slot: Any, data: bytes, name: str) -> None:
        images = self._slot(slot)
        if len(images) >= self.limits[slot]:
            raise InvalidParameterError(f"{slot}: holds at most {self.limits[slot]} image(s); remove one first")
        try:
            width, height = image_size(data)
            thumb = thumbnail(data)
        except Exception:  # noqa: BLE001 - PIL raises several types for bytes that are not an image
            raise InvalidParameterError(f"{slot}: {name} is not a PNG, JPEG or WebP image") from None
        images.append(SlotImage(name, bytes(data), width, height, thumb))

    def remove(self, slot: Any, index: Any) -> None:
        images = self._slot(slot)
        if isinstance(index, int) and 0 <= index < len(images):
            del images[index]

    def clear(self, slot: Any) -> None:
        self._slot(slot).clear()

    def trait(self, slot: str) -> list[dict[str, Any]]:
        """What the front-end shows: names, sizes and thumbnails only."""
        return [{"name": i.name, "width": i.width, "height": i.height, "thumb": i.thumb} for i in self.images[slot]]

    def data(self, slot: str) -> list[bytes]:
        return [i.data for i in self.images[slot]]


def mask_png(width: Any, height: Any, data: bytes, image_size: tuple[int, int] | None = None) -> bytes:
    """A painted mask (one byte a pixel, 255 = repaint) as a grayscale PNG.

    `image_size` is the init image's (width, height): a mask painted for another image is refused.
    """
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise InvalidParameterError(f"mask_image: the painted mask has no valid size ({width!r} x {height!r})")
    if len(data) != width * height:
        raise InvalidParameterError(
            f"mask_image: the painted mask has {len(data)} bytes, expected {width} x {height} = {width * height}"
        )
    if image_size is not None and (width, height) != tuple(image_size):
        raise InvalidParameterError(
            f"mask_image: painted at {width}x{height} but the init image is {image_size[0]}x{image_size[1]}; "
            "clear the mask and paint it again"
        )
    out = io.BytesIO()
    Image.frombytes("L", (width, height), bytes(data)).save(out, format="PNG")
    return out.getvalue()


def _shown(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(folder)


def find_loras(folders: list[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """LoRA files in `folders` (recursively, sorted by name): [{"name", "source"}] for the picker."""
    found: dict[str, dict[str, str]] = {}
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if len(found) >= MAX_LORA_FILES:
                break
            if path.suffix.lower() in LORA_SUFFIXES and path.is_file():
                found.setdefault(str(path.resolve()), {"name": path.name, "source": str(path.resolve())})
    return sorted(found.values(), key=lambda f: (f["name"].lower(), f["source"]))


class FeatureInputs(t.HasTraits):
    """The Studio's inputs beyond the form: FLUX.2 reference images, a control image, a painted mask, LoRA files.

    A widget mixes this in, routes `input_handlers()` messages to it and merges `input_params(...)`
    into the `diffusion` call; the front-end (js/src/feature-inputs.js) shows what `inputs_shown` allows.
    """

    ref_images: t.List[Any] = t.List(
        help="FLUX.2 reference images: [{name, width, height, thumb}] (full size kept in the kernel).").tag(sync=True)
    control_image: t.List[Any] = t.List(
        help="The ControlNet image, [] or one {name, width, height, thumb}.").tag(sync=True)
    end_image: t.List[Any] = t.List(
        help="A first/last-frame video's last frame, [] or one {name, width, height, thumb}.").tag(sync=True)
    mask = t.Dict(help="The painted inpainting mask: {width, height} once painted, else {}.").tag(sync=True)
    lora_files: t.List[Any] = t.List(
        help="LoRA files the picker offers: [{name, source}] found in lora_folders.").tag(sync=True)
    lora_folders = t.List(t.Unicode(), help="Where the picker looks, as the user sees them (relative to the working "
                          "folder where possible).").tag(sync=True)
    lora: t.List[Any] = t.List(
        help="The LoRAs switched on in the picker: [[source, weight], ...] (diffusion's lora).").tag(sync=True)
    inputs_shown = t.Dict(help="Which inputs apply to the current model: {ref_images, control_image, end_image, "
                          "mask, lora}.").tag(sync=True)

    def init_inputs(self, lora_folders: list[str | os.PathLike[str]] | None = None) -> None:
        self._slots = ImageSlots(SLOT_LIMITS)
        self._mask_png: bytes | None = None
        self._lora_folders: list[str | os.PathLike[str]] = (
            list(lora_folders) if lora_folders is not None else [Path.cwd() / DEFAULT_LORA_FOLDER])
        self.lora_files = find_loras(self._lora_folders)
        self.lora_folders = [_shown(Path(folder)) for folder in self._lora_folders]

    def input_handlers(self) -> dict[str, Any]:
        return {
            "slot_add": self._msg_slot_add,
            "slot_remove": lambda c, _b: self._slot_changed(c.get("slot"), self._slots.remove, c.get("index")),
            "slot_clear": lambda c, _b: self._slot_changed(c.get("slot"), self._slots.clear),
            "mask": self._msg_mask,
            "mask_clear": lambda _c, _b: self.clear_mask(),
            "lora_refresh": lambda _c, _b: setattr(self, "lora_files", find_loras(self._lora_folders)),
        }

    def show_inputs_for(self, family: str | families.Family | None, has_control_net: bool = False,
                        end_image: bool = False) -> None:
        """Which inputs the front-end shows, from the model's family (a name, or its row resolved for the
        model's variant), whether it has a ControlNet and whether it takes a last frame (a video model).

        The mask painter and the reference images follow the family's form rules (family_form.py).
        """
        row = families.get(family) if isinstance(family, str) else family
        rules = rules_for(row) if row is not None else {}
        self.inputs_shown = {
            "ref_images": bool(rules.get("ref_images")),
            "control_image": bool(has_control_net),
            "end_image": bool(end_image),
            "mask": bool(rules.get("mask")),
            "lora": row is not None and row.kind != "upscaler",
        }

    def _msg_slot_add(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        if not buffers:
            raise InvalidParameterError(f"{content.get('slot')}: the upload carried no file")
        slot = content.get("slot")
        self._slot_changed(slot, self._slots.add, bytes(buffers[0]), str(content.get("name") or "upload"))

    def _slot_changed(self, slot: Any, action: Any, *args: Any) -> None:
        action(slot, *args)
        setattr(self, slot, self._slots.trait(slot))

    def _msg_mask(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        if not buffers:
            raise InvalidParameterError("mask_image: the painted mask carried no pixels")
        size = self.init_image_size()
        self._mask_png = mask_png(content.get("width"), content.get("height"), bytes(buffers[0]), size)
        self.mask = {"width": content["width"], "height": content["height"]}

    def clear_mask(self) -> None:
        self._mask_png = None
        self.mask = {}

    def init_image_size(self) -> tuple[int, int] | None:
        """The init image's (width, height), which a painted mask must match; the widget overrides it."""
        return None

    def input_params(self, has_init_image: bool) -> dict[str, Any]:
        """The `diffusion` keyword arguments these inputs add (only those that apply to the current model)."""
        shown, out = self.inputs_shown, dict[str, Any]()
        if shown.get("ref_images") and self._slots.data("ref_images"):
            out["init_images"] = self._slots.data("ref_images")
        if shown.get("control_image") and self._slots.data("control_image"):
            out["control_image"] = self._slots.data("control_image")[0]
        if shown.get("end_image") and self._slots.data("end_image"):
            out["end_image"] = self._slots.data("end_image")[0]
        if shown.get("mask") and has_init_image and self._mask_png is not None:
            out["mask_image"] = self._mask_png
        if shown.get("lora") and self.lora:
            out["lora"] = [(str(source), float(weight)) for source, weight in self.lora]
        return out
