"""Parameter grids from the Studio: one image per combination of one or two varied parameters.

The cells run one job at a time, each followed like a Generate (queue position, steps, previews),
so Cancel stops the running cell and no further cell starts. Each finished cell joins the gallery
and the history folder as a normal image; the labelled grid (qvac_nb.grids.compose) joins them
last, as an image of kind "grid". The cells and their seeds come from `qvac_nb.grids.plan`, the one
grid planner (`qvac_nb.grid` uses it too).

The Studio owns a `StudioGridRunner` and hands it `GridHooks`, the few callables a running grid
reports through; this module does not know the Studio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .. import grids
from ..errors import InvalidParameterError
from ..generation import diffusion, validate_diffusion
from ..jobs import Job
from ..png import record_of, replayable_params
from ..progress_stream import ProgressTick
from .follow import follow_job
from .params import coerce_field
from .progress import idle_status

Axis = tuple[str, Sequence[Any]]
STRENGTH = "strength"


class AddImages(Protocol):
    """The widget's `_add_images`: save PNGs and list them first in the gallery, in their own order."""

    def __call__(self, pngs: list[bytes], *, kind: str, made: Mapping[str, Any],
                 extra: Mapping[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class GridHooks:
    """What a running grid needs from the widget it runs in."""

    set_status: Callable[[dict[str, Any]], None]  # every status of every cell, then the grid's final one
    send_preview: Callable[[ProgressTick], None]  # the running cell's latent previews
    set_job: Callable[[Job], None]  # the running cell: the widget's Cancel cancels it
    add_images: AddImages  # each finished cell, then the labelled grid
    end_job: Callable[[dict[str, Any]], None]  # the grid is over (its final status): the widget is free again


class GridRun(threading.Thread):
    """A grid started by `Studio.grid`: the thread that runs its cells (`join()` waits for it).

    While it runs and after: `cells` holds each finished cell's PNG (row by row), `png` the labelled
    grid once every cell is made (None if the grid was cancelled or failed), `status` the final
    status ({"phase": "done" | "cancelled" | "error", "message": ...}) and `plan` the checked axes
    and each cell's parameters.
    """

    def __init__(self, hooks: GridHooks, plan: grids.Plan, made: Mapping[str, Any] | None = None) -> None:
        super().__init__(name="qvac_nb-studio-grid", daemon=True)
        self.plan = plan
        self.made = dict(made or {})  # Studio._made_by when the grid started: what its images' entries say
        self.cells: list[bytes] = []
        self.png: bytes | None = None
        self.status: dict[str, Any] = {}
        self.stop = threading.Event()  # set by Studio.cancel(): no further cell starts
        self._hooks = hooks

    def run(self) -> None:
        count = len(self.plan.cells)
        started = time.monotonic()
        final: dict[str, Any] = {**idle_status(), "kind": "grid", "grid_cells": count}
        try:
            for index, cell in enumerate(self.plan.cells):
                if self.stop.is_set():
                    final = {**final, "phase": "cancelled", "grid_cell": index}
                    break
                final = self._run_cell(index, cell.params)
                if final["phase"] != "done":
                    break
            if final["phase"] == "done":
                self.png = grids.labelled_png(self.plan, self.cells)
                self._hooks.add_images([self.png], kind="grid", made=self.made,
                                       extra=sheet_extra(self.plan, self.cells[0]))
                final = {**final, "message": f"grid of {count} images", "seed": None,
                         "elapsed": round(time.monotonic() - started, 2)}
            elif final["phase"] == "cancelled":
                final = {**final, "message": f"{len(self.cells)} of {count} grid images made"}
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never raised into the kernel
            final = {**final, "phase": "error", "message": str(exc) or type(exc).__name__}
        finally:
            self.status = final
            self._hooks.set_status(final)
            self._hooks.end_job(final)

    def _run_cell(self, index: int, params: dict[str, Any]) -> dict[str, Any]:
        """Run one cell as a job the widget follows (Cancel cancels it); its final status."""
        job = diffusion(**params)
        self._hooks.set_job(job)
        if self.stop.is_set():  # Cancel came between the check in run() and this job's start
            job.cancel()
        outcome: dict[str, Any] = {}

        def done(pngs: list[bytes], _stats: Any) -> None:
            self.cells.append(pngs[0])
            self._hooks.add_images(pngs[:1], kind="diffusion", made=self.made)

        extra = {"kind": "grid", "seed": job.params["seed"], "grid_cell": index + 1,
                 "grid_cells": len(self.plan.cells)}
        follow_job(job, self._hooks.set_status, done, on_preview=self._hooks.send_preview, on_finish=outcome.update,
                   extra=extra).join()
        return outcome


class StudioGridRunner:
    """The Studio's "Grid" section: plans a grid from the form's `diffusion` arguments, hands out its `GridRun`
    and stops the one under way."""

    def __init__(self, hooks: GridHooks) -> None:
        self._hooks = hooks
        self._stop = threading.Event()  # the latest grid's: cancel() sets it

    def prepare(self, x: Any, y: Any, base: dict[str, Any], *, has_init_image: bool,
                made: Mapping[str, Any]) -> GridRun:
        """A grid of `base` (the form's arguments) over the axes, not started; raises, before anything runs, on a
        bad axis or value. `made` is what its images' gallery entries say made them (Studio._made_by)."""
        run = GridRun(self._hooks, grid_plan(x, y, base, has_init_image=has_init_image), made)
        self._stop = run.stop
        return run

    def cancel(self) -> None:
        """The grid under way starts no further cell (its running cell is the widget's job, cancelled there)."""
        self._stop.set()


def grid_plan(x: Any, y: Any, base: dict[str, Any], *, has_init_image: bool) -> grids.Plan:
    """The grid's cells from the form's `diffusion` arguments, every cell checked before any runs.

    The form's values are coerced as its fields take them; the seed policy is `grids.plan`'s (one random
    seed drawn for every cell).
    """
    axes = [axis for axis in (_coerced("x", x), _coerced("y", y)) if axis is not None]
    if len(axes) == 2 and axes[0][0] == axes[1][0]:
        raise InvalidParameterError(f"y: '{axes[1][0]}' is the x axis already; vary another parameter")
    for name, (param, _values) in zip(("x", "y"), axes, strict=False):
        if param == STRENGTH and not has_init_image:
            raise InvalidParameterError(f"{name}: '{STRENGTH}' changes nothing without an init image; set one first")
    base = {**base, "batch_count": 1}  # one image per cell; the form's batch count is for Generate
    plan = grids.plan(axes[0], axes[1] if len(axes) > 1 else None, base)
    for cell in plan.cells:
        validate_diffusion(**cell.params)  # a bad value fails now, not after the cells before it ran
    return plan


def sheet_extra(plan: grids.Plan, first_cell: bytes) -> dict[str, Any]:
    """What a grid sheet's gallery entry (and history record) keeps so that "All" can make the grid again: its
    description, its axes ({"x": [param, values], "y": ... or None}) and its base parameters (the first cell's
    record: the form's values with the axes' first values, the seed drawn for every cell)."""
    record = record_of(first_cell)
    return {"grid": plan.describe(), "grid_axes": {"x": list(plan.x), "y": list(plan.y) if plan.y else None},
            "grid_base": replayable_params(record), "img2img": bool(record.get("init_image_used"))}


def sheet_reuse(entry: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A grid sheet's "All": its base parameters (for the form) and the "grid_axes" message that puts its axes
    into the Grid section. Raises for a sheet saved without its axes."""
    axes = entry.get("grid_axes")
    x = axis_text(axes.get("x")) if isinstance(axes, dict) else None
    if x is None or not isinstance(axes, dict):
        raise InvalidParameterError("gallery: this grid sheet was saved without its axes (by an older qvac_nb); "
                                    "reuse one of its cells instead")
    return dict(entry.get("grid_base") or {}), {"type": "grid_axes", "x": x, "y": axis_text(axes.get("y"))}


def axis_text(axis: Any) -> list[str] | None:
    """A kept axis as the Grid section shows it: [param, "v1, v2, ..."] (text: a seed past 2**53 stays exact
    in the browser), or None for no axis (or a damaged one)."""
    if not (isinstance(axis, (list, tuple)) and len(axis) == 2 and isinstance(axis[1], (list, tuple))):
        return None
    return [str(axis[0]), ", ".join(str(v) for v in axis[1])]


def _coerced(name: str, axis: Any) -> tuple[str, list[Any]] | None:
    """The axis with its values as the form's fields take them ("7" -> 7.0 for cfg_scale)."""
    checked = grids.check_axis(name, axis)
    if checked is None:
        return None
    param, values = checked
    if param == grids.PROMPT_SR:
        return param, [str(v) for v in values]
    return param, [coerce_field(param, v) for v in values]
