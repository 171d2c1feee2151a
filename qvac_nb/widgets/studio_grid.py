"""Parameter grids from the Studio: one image per combination of one or two varied parameters.

The cells run one job at a time, each followed like a Generate (queue position, steps, previews),
so Cancel stops the running cell and no further cell starts. Each finished cell joins the gallery
and the history folder as a normal image; the labelled grid (qvac_nb.grids.compose) joins them
last, as an image of kind "grid".
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import grids
from ..errors import InvalidParameterError, UnsupportedOperationError
from ..generation import diffusion, validate_diffusion
from ..png import record_of, replayable_params
from .follow import follow_job
from .params import REUSABLE, coerce_field, form_from_record, merge_form
from .progress import idle_status

if TYPE_CHECKING:
    from .studio import Studio

Axis = tuple[str, Sequence[Any]]
SEED = "seed"
STRENGTH = "strength"


class GridRun(threading.Thread):
    """A grid started by `Studio.grid`: the thread that runs its cells (`join()` waits for it).

    While it runs and after: `cells` holds each finished cell's PNG (row by row), `png` the labelled
    grid once every cell is made (None if the grid was cancelled or failed), `status` the final
    status ({"phase": "done" | "cancelled" | "error", "message": ...}) and `plan` the checked axes
    and each cell's parameters.
    """

    def __init__(self, studio: Studio, plan: grids.Plan, made: dict[str, Any] | None = None) -> None:
        super().__init__(name="qvac_nb-studio-grid", daemon=True)
        self.plan = plan
        self.made = made or {}  # Studio._made_by when the grid started: what its images' entries say
        self.cells: list[bytes] = []
        self.png: bytes | None = None
        self.status: dict[str, Any] = {}
        self.stop = threading.Event()  # set by Studio.cancel(): no further cell starts
        self._studio = studio

    def run(self) -> None:
        self._studio._run_grid(self)


def grid_plan(x: Any, y: Any, base: dict[str, Any], *, has_init_image: bool) -> grids.Plan:
    """The grid's cells from the form's `diffusion` arguments, every cell checked before any runs."""
    axes = [axis for axis in (_coerced("x", x), _coerced("y", y)) if axis is not None]
    if len(axes) == 2 and axes[0][0] == axes[1][0]:
        raise InvalidParameterError(f"y: '{axes[1][0]}' is the x axis already; vary another parameter")
    for name, (param, _values) in zip(("x", "y"), axes, strict=False):
        if param == STRENGTH and not has_init_image:
            raise InvalidParameterError(f"{name}: '{STRENGTH}' changes nothing without an init image; set one first")
    base = {**base, "batch_count": 1}  # one image per cell; the form's batch count is for Generate
    if base.get(SEED) == -1 and all(param != SEED for param, _ in axes):
        # One seed for every cell (drawn as diffusion draws one): cells differ only where the axes say.
        base[SEED] = random.randrange(0, 2**31)
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


def axis_text(axis: Any) -> list[str] | None:
    """A kept axis as the Grid section shows it: [param, "v1, v2, ..."] (text: a seed past 2**53 stays exact
    in the browser), or None for no axis (or a damaged one)."""
    if not (isinstance(axis, (list, tuple)) and len(axis) == 2 and isinstance(axis[1], (list, tuple))):
        return None
    return [str(axis[0]), ", ".join(str(v) for v in axis[1])]


def _coerced(name: str, axis: Any) -> tuple[str, list[Any]] | None:
    """The axis with its values as the form's fields take them ("7" -> 7.0 for cfg_scale)."""
    checked = grids._axis(name, axis)
    if checked is None:
        return None
    param, values = checked
    if param == grids.PROMPT_SR:
        return param, [str(v) for v in values]
    return param, [coerce_field(param, v) for v in values]


class StudioGrid:
    """The Studio's "Grid" section (a mixin of Studio): the "grid" message and `Studio.grid`."""

    _grid_stop: threading.Event

    def _msg_grid(self: Studio, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if isinstance(content.get("params"), dict):
            self.params = merge_form(self.params, content["params"])
        self.grid(content.get("x"), content.get("y"))

    def grid(self: Studio, x: Axis, y: Axis | None = None, **overrides: Any) -> GridRun:
        """Make a parameter grid with the form's parameters (plus `overrides`); returns its thread at once.

        `x` and `y` are (parameter name, [values]) as for `qvac_nb.grid`: seed, cfg_scale, steps,
        sampling_method, scheduler, strength (with an init image), ... or "prompt_sr" (each value
        replaces the first one in the prompt). One image per (x, y) pair, batch count 1; a random
        seed is drawn once for all cells. The cells run one after the other: each joins the gallery
        as it is made, then the labelled grid image does. `cancel()` stops the grid.

        Returns a `GridRun` (a thread): `run.join(timeout)` waits, then `run.png` is the grid's PNG
        and `run.cells` the cells' PNGs. A bad axis or value raises here, before anything runs.
        """
        with self._lock:
            try:
                if self.form_rules.get("video"):
                    raise UnsupportedOperationError("grid: a grid is made of images; the loaded model makes videos "
                                                    "(generate them one at a time)", param="grid")
                base, has_init = self._form_kwargs(overrides)
                run = GridRun(self, grid_plan(x, y, base, has_init_image=has_init), self._made_by(self.current_model))
            except Exception as exc:
                self._show_error(exc)
                self.status = {**idle_status(), "phase": "error", "kind": "grid", "message": str(exc)}
                raise
            self.busy = True
            self.error = ""
            self._grid_stop = run.stop
        self.status = {**idle_status(), "phase": "loading", "kind": "grid", "message": "starting the grid",
                       "grid_cell": 1, "grid_cells": len(run.plan.cells)}
        run.start()
        return run

    def _run_grid(self: Studio, run: GridRun) -> None:
        count = len(run.plan.cells)
        started = time.monotonic()
        final: dict[str, Any] = {**idle_status(), "kind": "grid", "grid_cells": count}
        try:
            for index, cell in enumerate(run.plan.cells):
                if run.stop.is_set():
                    final = {**final, "phase": "cancelled", "grid_cell": index}
                    break
                final = self._grid_cell(run, index, cell.params)
                if final["phase"] != "done":
                    break
            if final["phase"] == "done":
                run.png = grids.labelled_png(run.plan, run.cells)
                self._add_images([run.png], kind="grid", made=run.made, extra=sheet_extra(run.plan, run.cells[0]))
                final = {**final, "message": f"grid of {count} images", "seed": None,
                         "elapsed": round(time.monotonic() - started, 2)}
            elif final["phase"] == "cancelled":
                final = {**final, "message": f"{len(run.cells)} of {count} grid images made"}
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never raised into the kernel
            final = {**final, "phase": "error", "message": str(exc) or type(exc).__name__}
        finally:
            run.status = final
            self.status = final
            self._end_job(final)

    def _grid_cell(self: Studio, run: GridRun, index: int, params: dict[str, Any]) -> dict[str, Any]:
        """Run one cell as a job the Studio follows (Cancel cancels it); its final status."""
        job = diffusion(**params)
        self._job = job
        if run.stop.is_set():  # Cancel came between the check above and this job's start
            job.cancel()
        outcome: dict[str, Any] = {}

        def done(pngs: list[bytes], _stats: Any) -> None:
            run.cells.append(pngs[0])
            self._add_images(pngs[:1], kind="diffusion", made=run.made)

        extra = {"kind": "grid", "seed": job.params["seed"], "grid_cell": index + 1, "grid_cells": len(run.plan.cells)}
        follow_job(job, self._set_status, done, on_preview=self._send_preview, on_finish=outcome.update,
                   extra=extra).join()
        return outcome

    def _reuse_grid(self: Studio, entry: dict[str, Any]) -> None:
        """A grid sheet's "All": its base parameters back into the form (seed fixed: the grid comes out the same)
        and its axes into the Grid section (a "grid_axes" message to the front-end)."""
        axes = entry.get("grid_axes")
        x = axis_text(axes.get("x")) if isinstance(axes, dict) else None
        if x is None:
            raise InvalidParameterError("gallery: this grid sheet was saved without its axes (by an older qvac_nb); "
                                        "reuse one of its cells instead")
        self.params = form_from_record(self.params, dict(entry.get("grid_base") or {}), REUSABLE)
        self.send({"type": "grid_axes", "x": x, "y": axis_text(axes.get("y"))})
        self.error = ""
