"""The Studio's Grid section on the real engine: cells and the labelled grid in the gallery, errors, Cancel.

Driven as the front-end drives it (`widget._on_msg(widget, content, buffers)`); kept small: 64x64,
few steps and four cells in all (two made, two of which only the first starts).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from widget_driver import JOB_TIMEOUT_S, Recorder, msg, wait_for, wait_idle, work_in_tmp  # noqa: F401 - work_in_tmp: autouse

from qvac_nb import grids
from qvac_nb.errors import InvalidParameterError
from qvac_nb.widgets import Studio
from qvac_nb.widgets.params import merge_form

SMALL = {"prompt": "a red boat on a lake", "width": 64, "height": 64, "steps": 2}
def pixels(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def test_grid_cells_and_labelled_grid_join_the_gallery(sd1_id: str) -> None:
    studio = Studio(sd1_id, **SMALL)
    rec = Recorder(studio)
    # The form asks for a batch of 3 with a random seed: a grid still makes one image per cell.
    params = {**studio.params, "batch_count": 3, "random_seed": True}
    msg(studio, {"type": "grid", "x": ["seed", [1, 2]], "y": ["cfg_scale", [6.5]], "params": params})
    assert studio.busy  # the handler returned at once; the grid runs on its thread
    wait_idle(studio)

    assert studio.error == "" and studio.status["phase"] == "done", studio.error
    assert studio.status["kind"] == "grid" and studio.status["message"] == "grid of 2 images"
    # Newest first: the grid, then the cells in reverse order of making.
    assert [e["kind"] for e in studio.gallery] == ["grid", "diffusion", "diffusion"]
    assert [e["seed"] for e in studio.gallery[1:]] == [2, 1]
    for entry in studio.gallery[1:]:
        assert entry["params"]["cfg_scale"] == 6.5 and entry["params"]["batch_count"] == 1
        assert (entry["width"], entry["height"]) == (64, 64)
    grid_png, cell2, cell1 = studio.images
    assert pixels(cell1) != pixels(cell2)  # the seed axis was applied, not ignored
    # Each cell was followed: its status said which cell it was.
    sampled = {s["grid_cell"] for s in rec.statuses if s["phase"] == "sampling"}
    assert sampled == {1, 2} and all(s["grid_cells"] == 2 for s in rec.statuses if s.get("grid_cell"))

    expected = grids.compose([cell1, cell2], ["seed=1", "seed=2"], ["cfg_scale=6.5"])
    grid_image = Image.open(io.BytesIO(grid_png))
    assert grid_image.size == expected.size
    assert grid_image.width > 2 * 64 and grid_image.height > 64  # row labels left, column labels above
    assert pixels(grid_png) == expected.tobytes()
    text = grid_image.info["parameters"]
    assert 'Grid X: "seed: 1, 2"' in text and 'Grid Y: "cfg_scale: 6.5"' in text and SMALL["prompt"] in text
    assert studio.gallery[0]["grid"] == "x: seed = 1, 2; y: cfg_scale = 6.5"

    # The sheet keeps its axes and base parameters (the first cell's record): "All" makes the grid again.
    sheet = studio.gallery[0]
    assert sheet["seed"] is None and sheet["grid_axes"] == {"x": ["seed", [1, 2]], "y": ["cfg_scale", [6.5]]}
    assert sheet["grid_base"] == studio.gallery[2]["params"]
    _check_grid_all(studio, sheet["id"], rec)

    # All three are in the history folder: a new Studio lists them, and the sheet's "All" works there too.
    again = Studio(sd1_id, **SMALL)
    assert [e["kind"] for e in again.gallery] == ["grid", "diffusion", "diffusion"]
    assert again.gallery[0]["grid"] == "x: seed = 1, 2; y: cfg_scale = 6.5"
    assert again.gallery[0]["grid_axes"] == sheet["grid_axes"] and again.gallery[0]["grid_base"] == sheet["grid_base"]
    _check_grid_all(again, again.gallery[0]["id"], Recorder(again))

    # A cell is what Generate makes with the same values.
    studio.generate(seed=1, random_seed=False, cfg_scale=6.5, batch_count=1)
    wait_idle(studio)
    assert studio.status["phase"] == "done", studio.error
    assert pixels(studio.images[0]) == pixels(cell1)


def _check_grid_all(studio: Studio, sheet_id: str, rec: Recorder) -> None:
    """A grid card's "All" (reuse_all): the base parameters into the form, seed fixed, and the axes sent to the
    Grid section as text; its "Seed" stays refused (a sheet has no one seed)."""
    studio.params = merge_form(studio.params, {"prompt": "something else", "steps": 9, "cfg_scale": 3.0,
                                               "seed": 77, "random_seed": True})
    msg(studio, {"type": "reuse_all", "id": sheet_id})
    assert studio.error == ""
    assert (studio.params["prompt"], studio.params["steps"], studio.params["width"]) == (SMALL["prompt"], 2, 64)
    assert (studio.params["cfg_scale"], studio.params["seed"], studio.params["random_seed"]) == (6.5, 1, False)
    assert rec.of_type("grid_axes")[-1] == ({"type": "grid_axes", "x": ["seed", "1, 2"], "y": ["cfg_scale", "6.5"]}, [])
    msg(studio, {"type": "reuse_seed", "id": sheet_id})
    assert "no generation parameters" in studio.error and studio.params["seed"] == 1
    studio.clear_error()


@pytest.mark.parametrize(("axis", "names"), [
    (["cfg", [1]], ["x", "'cfg'"]),
    (["seed", list(range(grids.MAX_CELLS + 1))], ["x, y", str(grids.MAX_CELLS)]),
    (["prompt_sr", ["green", "blue"]], ["prompt_sr", "'green'"]),
    (["steps", [2, 0]], ["steps"]),
    (["strength", [0.3, 0.6]], ["strength", "init image"]),
    ("seed", ["x: expected"]),
])
def test_grid_errors_name_the_parameter(sd1_id: str, axis: Any, names: list[str]) -> None:
    studio = Studio(sd1_id, **SMALL, output_dir=None)
    rec = Recorder(studio)
    msg(studio, {"type": "grid", "x": axis, "y": None, "params": dict(studio.params)})  # never raises
    for name in names:
        assert name in studio.error
    assert studio.status["phase"] == "error" and not studio.busy
    assert not any(s["phase"] == "sampling" for s in rec.statuses)  # checked before any cell ran
    assert studio.gallery == [] and studio.job is None


def test_grid_from_python_raises_and_needs_a_model(sd1_id: str) -> None:
    studio = Studio(sd1_id, **SMALL, output_dir=None)
    with pytest.raises(InvalidParameterError, match="y: 'cfg'"):
        studio.grid(("seed", [1]), ("cfg", [7]))
    assert "'cfg'" in studio.error and not studio.busy
    with pytest.raises(InvalidParameterError, match="y: 'seed' is the x axis"):
        studio.grid(("seed", [1]), ("seed", [2]))
    empty = Studio(output_dir=None)
    msg(empty, {"type": "grid", "x": ["seed", [1]], "y": None})
    assert "load a model first" in empty.error


def test_a_random_seed_is_drawn_once_for_every_cell(sd1_id: str) -> None:
    # grids.plan's seed policy: the cells differ only where the axes say (and "All" on the sheet, which keeps
    # the first cell's seed, makes the same grid again).
    studio = Studio(sd1_id, **SMALL, output_dir=None)
    run = studio.grid(("cfg_scale", [6.5, 7.5]), ("steps", [1, 2]), random_seed=True)
    studio.cancel()  # the plan is what this checks: no cell needs to run
    run.join(JOB_TIMEOUT_S)
    seeds = {cell.params["seed"] for cell in run.plan.cells}
    assert len(seeds) == 1 and next(iter(seeds)) >= 0
    assert run.status["phase"] == "cancelled" and not studio.busy


def test_cancel_stops_the_grid(sd1_id: str) -> None:
    studio = Studio(sd1_id, **{**SMALL, "steps": 30})
    rec = Recorder(studio)
    msg(studio, {"type": "grid", "x": ["seed", [1, 2]], "y": None})
    wait_for(lambda: studio.status.get("phase") == "sampling" and studio.status.get("grid_cell") == 1
             and studio.status.get("step", 0) >= 1)
    msg(studio, {"type": "cancel"})
    wait_idle(studio)
    assert studio.status["phase"] == "cancelled" and studio.status["kind"] == "grid"
    assert studio.error == ""  # a cancel is not an error
    assert len(studio.gallery) < 2  # fewer images than cells, and no grid image
    assert all(e["kind"] != "grid" for e in studio.gallery)
    assert not any(s.get("grid_cell") == 2 for s in rec.statuses)  # the second cell never started
    assert max(s["step"] for s in rec.statuses) < 30
    assert studio.job is None
