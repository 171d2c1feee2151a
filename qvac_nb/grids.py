"""Parameter grids: one image per combination of one or two varied parameters, labelled in one picture.

`grid(model_id=..., x=("cfg_scale", [4, 7, 10]), y=("seed", [1, 2]), prompt=...)` queues every
combination (the model runs them in turn), then lays the images out with the values as row and
column labels. Besides `diffusion`'s parameters an axis may be `"prompt_sr"`: its first value is a
term of the prompt and each value replaces it (A1111's "Prompt S/R").

`plan` is the one grid planner (the Studio's Grid section uses it too), and it alone decides every
cell's seed: an axis's value when seed is an axis, else the seed given, and a random seed (-1, the
default) is drawn once for the whole grid, so the cells differ only where the axes say.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from . import schema
from .errors import InvalidParameterError, InvalidTypeError
from .generation import diffusion
from .jobs import DiffusionJob
from .png import a1111_text, parameters_of, png_bytes, record_of

PROMPT_SR = "prompt_sr"
SEED = "seed"
RANDOM_SEED = -1  # diffusion's "draw a seed", also its default
MAX_CELLS = 64  # a grid is a comparison, not a batch: keeps a typo from queueing thousands of images
LABEL_PAD = 6


def check_axis(name: str, axis: Any) -> tuple[str, list[Any]] | None:
    """`axis` (x or y, as `name` says) checked: (parameter, [values]), or None for no axis."""
    if axis is None:
        return None
    if not (isinstance(axis, (tuple, list)) and len(axis) == 2 and isinstance(axis[0], str)):
        raise InvalidTypeError(f"{name}: expected (parameter name, [values]), e.g. ('cfg_scale', [4, 7]), got {axis!r}")
    param, values = axis
    allowed = sorted({p.name for p in schema.DIFFUSION} - {"model_id", "batch_count", "preview"} | {PROMPT_SR})
    if param not in allowed:
        raise InvalidParameterError(
            f"{name}: '{param}' is not a parameter a grid can vary; one of {', '.join(allowed)}")
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or not values:
        raise InvalidParameterError(f"{name}: the values of '{param}' must be a non-empty list")
    return param, list(values)


def grid_seed(params: dict[str, Any], axes: list[tuple[str, list[Any]]]) -> dict[str, Any]:
    """`params` with the grid's seed: a random one (-1 or not given) drawn once for every cell, unless seed is
    an axis; a fixed seed stays. One seed for all cells keeps them comparable (only the axes differ), and
    the first cell's record then holds the seed that makes the whole grid again."""
    if params.get(SEED, RANDOM_SEED) != RANDOM_SEED or any(param == SEED for param, _ in axes):
        return params
    return {**params, SEED: random.randrange(0, 2**31)}  # drawn as diffusion draws one


def _cell_params(params: dict[str, Any], axes: list[tuple[tuple[str, Any], Any]]) -> dict[str, Any]:
    """A cell's parameters: `params` with each axis's ((parameter, value), the axis's first value) applied."""
    out = dict(params)
    for (param, value), first in axes:
        if param == PROMPT_SR:
            prompt = str(out.get("prompt", ""))
            if first not in prompt:
                raise InvalidParameterError(f"prompt_sr: the first value '{first}' must appear in the prompt")
            out["prompt"] = prompt.replace(str(first), str(value))
        else:
            out[param] = value
    return out


@dataclass(frozen=True)
class Cell:
    """One image of a grid: its x and y values and the `diffusion` keyword arguments that make it."""

    x: Any
    y: Any
    params: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """A checked grid: its axes and its cells, row by row (y outer, x inner)."""

    x: tuple[str, list[Any]]
    y: tuple[str, list[Any]] | None
    cells: list[Cell]

    def labels(self) -> tuple[list[str], list[str]]:
        """The column labels ("cfg_scale=4", ...) and the row labels ([""] without a y axis)."""
        labels_x = [f"{self.x[0]}={v}" for v in self.x[1]]
        labels_y = [f"{self.y[0]}={v}" for v in self.y[1]] if self.y else [""]
        return labels_x, labels_y

    def describe(self) -> str:
        """The axes in words, e.g. "x: cfg_scale = 4, 7, 10; y: seed = 1, 2"."""
        axes = [("x", self.x)] + ([("y", self.y)] if self.y else [])
        return "; ".join(f"{name}: {param} = {', '.join(str(v) for v in values)}" for name, (param, values) in axes)


def plan(x: tuple[str, Sequence[Any]], y: tuple[str, Sequence[Any]] | None, params: dict[str, Any]) -> Plan:
    """Check the axes and work out every cell's parameters (`params` with the grid's seed, see `grid_seed`, and
    the cell's values put in).

    Raises before anything runs: an axis that is not (name, [values]) or names no parameter a grid
    can vary, batch_count other than 1, more than MAX_CELLS cells, a prompt_sr term not in the prompt.
    """
    x_axis = check_axis("x", x)
    y_axis = check_axis("y", y)
    if x_axis is None:
        raise InvalidTypeError("x: expected (parameter name, [values]), e.g. ('cfg_scale', [4, 7]), got None")
    if params.get("batch_count", 1) != 1:
        raise InvalidParameterError("batch_count: a grid makes one image per cell; vary 'seed' for more")
    rows = y_axis[1] if y_axis else [None]
    count = len(x_axis[1]) * len(rows)
    if count > MAX_CELLS:
        raise InvalidParameterError(f"x, y: {count} cells; a grid makes at most {MAX_CELLS}")
    params = grid_seed(params, [x_axis, *([y_axis] if y_axis else [])])
    cells = []
    for yv in rows:
        for xv in x_axis[1]:
            axes = [((x_axis[0], xv), x_axis[1][0])]
            if y_axis:
                axes.append(((y_axis[0], yv), y_axis[1][0]))
            cells.append(Cell(xv, yv, _cell_params(params, axes)))
    return Plan(x_axis, y_axis, cells)


def grid(*, model_id: str, x: tuple[str, Sequence[Any]], y: tuple[str, Sequence[Any]] | None = None,
         timeout: float | None = None, **params: Any) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Generate one image per (x, y) value pair and return the labelled grid and a table of parameters.

    `x` and `y` are (parameter name, list of values): seed, cfg_scale, steps, sampling_method,
    scheduler, ... or "prompt_sr" (replace the list's first term of the prompt with each value).
    Every other keyword is passed to `diffusion` as is, but for a random seed (-1, the default): it is
    drawn once for every cell, so the cells differ only where the axes say (the table lists it).
    Returns (grid as a PIL image, one dict per cell: its x and y values, its PNG bytes under "png"
    and the parameters it was made with). Ctrl-C or an error in one cell cancels the others.
    """
    checked = plan(x, y, params)
    jobs: list[tuple[Cell, DiffusionJob]] = []
    try:
        for cell in checked.cells:
            jobs.append((cell, diffusion(model_id=model_id, **cell.params)))
        pngs = [job.outputs.result(timeout)[0] for _, job in jobs]
    except BaseException:
        for _, job in jobs:
            job.cancel()
        raise
    table = [{"x": cell.x, "y": cell.y, "png": png, **parameters_of(png)}
             for (cell, _), png in zip(jobs, pngs, strict=True)]
    return compose(pngs, *checked.labels()), table


def labelled_png(checked: Plan, pngs: list[bytes]) -> bytes:
    """The grid of `pngs` (the cells' images, row by row) as a PNG whose `parameters` text names the axes.

    The text is the first cell's A1111 parameters with "Grid X" and "Grid Y" added (quoted: values
    may hold commas). No qvac_nb record: the grid itself cannot be made again by one `diffusion` call.
    """
    image = compose(pngs, *checked.labels())
    axes = [("Grid X", checked.x)] + ([("Grid Y", checked.y)] if checked.y else [])
    extra = ", ".join(f"{label}: {json.dumps(f'{param}: ' + ', '.join(str(v) for v in values))}"
                      for label, (param, values) in axes)
    first = record_of(pngs[0])
    return png_bytes(image, {"parameters": f"{a1111_text(first)}, {extra}" if first else extra})


def compose(pngs: list[bytes], labels_x: list[str], labels_y: list[str]) -> Image.Image:
    """Lay `pngs` out row by row (len(labels_x) columns), with the labels above the columns and left of the rows."""
    images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    cell_w = max(img.width for img in images)
    cell_h = max(img.height for img in images)
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        return round(right - left), round(bottom - top)

    top = max(size(t)[1] for t in labels_x) + 2 * LABEL_PAD
    left = (max(size(t)[0] for t in labels_y) + 2 * LABEL_PAD) if any(labels_y) else 0
    cols, rows = len(labels_x), len(labels_y)
    out = Image.new("RGB", (left + cols * cell_w, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(labels_x):
        w, _ = size(text)
        draw.text((left + i * cell_w + (cell_w - w) // 2, LABEL_PAD), text, fill="black", font=font)
    for j, text in enumerate(labels_y):
        _, h = size(text)
        draw.text((LABEL_PAD, top + j * cell_h + (cell_h - h) // 2), text, fill="black", font=font)
    for k, img in enumerate(images):
        out.paste(img, (left + (k % cols) * cell_w, top + (k // cols) * cell_h))
    return out
