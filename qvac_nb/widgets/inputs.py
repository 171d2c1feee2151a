"""The Studio's extra inputs, kept in the kernel: image slots (FLUX.2 reference images, a control image),
the painted inpainting mask, and the LoRA files it offers.

Full-size bytes stay here; the widget state only carries thumbnails (`ImageSlots.trait`). The Studio owns a
`FeatureInputs` and keeps the synced traits it sets (`InputsHost`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


class InputsHost(Protocol):
    """What `FeatureInputs` reads and sets on its widget: the synced traits the front-end
    (js/src/feature-inputs.js) shows, and the init image's size a painted mask must match."""

    ref_images: list[Any]  # FLUX.2 reference images: [{name, width, height, thumb}]
    control_image: list[Any]  # the ControlNet image: [] or one such dict
    end_image: list[Any]  # a first/last-frame video's last frame: [] or one such dict
    mask: dict[str, Any]  # {width, height} once painted, else {}
    lora_files: list[Any]  # [{name, source}] found in lora_folders
    lora_folders: list[str]  # where the picker looks, as the user sees them
    lora: list[Any]  # the picker's choice: [[source, weight], ...]
    inputs_shown: dict[str, Any]  # {ref_images, control_image, end_image, mask, lora}: which apply

    def init_image_size(self) -> tuple[int, int] | None: ...


class FeatureInputs:
    """The Studio's inputs beyond the form: FLUX.2 reference images, a control image, a painted mask, LoRA files.

    The widget owns one, routes `handlers()` messages to it and merges `params(...)` into the `diffusion`
    call. Full-size bytes stay here; what the front-end shows goes into the host's traits (`InputsHost`).
    """

    def __init__(self, host: InputsHost, lora_folders: list[str | os.PathLike[str]] | None = None) -> None:
        self._host = host
        self._slots = ImageSlots(SLOT_LIMITS)
        self._mask_png: bytes | None = None
        self._lora_folders: list[str | os.PathLike[str]] = (
            list(lora_folders) if lora_folders is not None else [Path.cwd() / DEFAULT_LORA_FOLDER])
        host.lora_files = find_loras(self._lora_folders)
        host.lora_folders = [_shown(Path(folder)) for folder in self._lora_folders]

    def handlers(self) -> dict[str, Callable[[dict[str, Any], list[bytes]], None]]:
        """The front-end's messages about these inputs: message type -> handler(content, buffers)."""
        return {
            "slot_add": self._msg_slot_add,
            "slot_remove": lambda c, _b: self._slot_changed(c.get("slot"), self._slots.remove, c.get("index")),
            "slot_clear": lambda c, _b: self._slot_changed(c.get("slot"), self._slots.clear),
            "mask": self._msg_mask,
            "mask_clear": lambda _c, _b: self.clear_mask(),
            "lora_refresh": lambda _c, _b: setattr(self._host, "lora_files", find_loras(self._lora_folders)),
        }

    def show_for(self, family: str | families.Family | None, has_control_net: bool = False,
                 end_image: bool = False) -> None:
        """Which inputs the front-end shows, from the model's family (a name, or its row resolved for the
        model's variant), whether it has a ControlNet and whether it takes a last frame (a video model).

        The mask painter and the reference images follow the family's form rules (family_form.py).
        """
        row = families.get(family) if isinstance(family, str) else family
        rules = rules_for(row) if row is not None else {}
        self._host.inputs_shown = {
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

    def _slot_changed(self, slot: Any, action: Callable[..., None], *args: Any) -> None:
        action(slot, *args)  # raises for a slot name that is none of SLOT_LIMITS'
        setattr(self._host, slot, self._slots.trait(slot))  # the slot's trait has the slot's name

    def _msg_mask(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        if not buffers:
            raise InvalidParameterError("mask_image: the painted mask carried no pixels")
        size = self._host.init_image_size()
        self._mask_png = mask_png(content.get("width"), content.get("height"), bytes(buffers[0]), size)
        self._host.mask = {"width": content["width"], "height": content["height"]}

    def clear_mask(self) -> None:
        """Forget the painted mask (it belongs to the init image it was painted on)."""
        self._mask_png = None
        self._host.mask = {}

    def params(self, has_init_image: bool) -> dict[str, Any]:
        """The `diffusion` keyword arguments these inputs add (only those that apply to the current model)."""
        shown, out = self._host.inputs_shown, dict[str, Any]()
        if shown.get("ref_images") and self._slots.data("ref_images"):
            out["init_images"] = self._slots.data("ref_images")
        if shown.get("control_image") and self._slots.data("control_image"):
            out["control_image"] = self._slots.data("control_image")[0]
        if shown.get("end_image") and self._slots.data("end_image"):
            out["end_image"] = self._slots.data("end_image")[0]
        if shown.get("mask") and has_init_image and self._mask_png is not None:
            out["mask_image"] = self._mask_png
        if shown.get("lora") and self._host.lora:
            out["lora"] = [(str(source), float(weight)) for source, weight in self._host.lora]
        return out
