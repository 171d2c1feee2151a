"""Parameter grids: every cell made with its own values, labelled, and listed in the table."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import qvac_nb
from qvac_nb import grids
from qvac_nb.grids import compose


def test_grid_varies_two_parameters(sd1_id: str) -> None:
    image, table = qvac_nb.grid(model_id=sd1_id, x=("cfg_scale", [2.0, 9.0]), y=("seed", [5, 6]),
                                prompt="a red boat", width=64, height=64, steps=2, timeout=300)
    assert [(row["x"], row["y"]) for row in table] == [(2.0, 5), (9.0, 5), (2.0, 6), (9.0, 6)]
    assert [(row["cfg_scale"], row["seed"]) for row in table] == [(2.0, 5), (9.0, 5), (2.0, 6), (9.0, 6)]
    assert len({row["png"] for row in table}) == 4  # each cell is its own image
    # The same cell made on its own is the same image: the grid passes its values, nothing else.
    alone = qvac_nb.diffusion(model_id=sd1_id, prompt="a red boat", width=64, height=64, steps=2, cfg_scale=9.0,
                              seed=6).outputs.result(300)[0]
    assert alone == table[3]["png"]
    # Labels above and left of the 2x2 images.
    assert image.width > 128 and image.height > 128 and image.width < 128 + 200
    cell = Image.open(io.BytesIO(table[3]["png"])).convert("RGB")
    left, top = image.width - 128, image.height - 128
    assert image.crop((left + 64, top + 64, left + 128, top + 128)).tobytes() == cell.tobytes()


def test_grid_prompt_terms_and_errors(sd1_id: str) -> None:
    _image, table = qvac_nb.grid(model_id=sd1_id, x=("prompt_sr", ["red", "blue"]), prompt="a red boat",
                                 width=64, height=64, steps=1, seed=1, timeout=300)
    assert [row["prompt"] for row in table] == ["a red boat", "a blue boat"]
    with pytest.raises(qvac_nb.InvalidParameterError, match="x: 'cfg' is not a parameter"):
        qvac_nb.grid(model_id=sd1_id, x=("cfg", [1]), prompt="p")
    with pytest.raises(qvac_nb.InvalidParameterError, match="prompt_sr"):
        qvac_nb.grid(model_id=sd1_id, x=("prompt_sr", ["green", "blue"]), prompt="a red boat", steps=1)
    with pytest.raises(qvac_nb.InvalidTypeError, match="y: expected"):
        qvac_nb.grid(model_id=sd1_id, x=("seed", [1]), y="seed", prompt="p")


def test_compose_layout() -> None:
    def png(color: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (16, 8), color).save(out, format="PNG")
        return out.getvalue()

    image = compose([png((255, 0, 0)), png((0, 0, 255))], ["a=1", "a=2"], [""])
    assert image.height > 8 and image.width == 32  # no row labels: no left margin
    bottom = image.height - 2
    assert image.getpixel((4, bottom)) == (255, 0, 0) and image.getpixel((20, bottom)) == (0, 0, 255)


def test_plan_decides_every_cells_seed() -> None:
    # The one seed policy (qvac_nb.grid and the Studio's Grid section): a random seed (-1 or not given) is
    # drawn once for every cell; a fixed seed stays; a seed axis gives each cell its value.
    for params in ({"prompt": "p", "seed": -1}, {"prompt": "p"}):
        drawn = grids.plan(("cfg_scale", [4, 7]), ("steps", [1, 2]), params)
        seeds = {cell.params["seed"] for cell in drawn.cells}
        assert len(seeds) == 1 and 0 <= next(iter(seeds)) < 2**31
    fixed = grids.plan(("cfg_scale", [4, 7]), None, {"prompt": "p", "seed": 5})
    assert [cell.params["seed"] for cell in fixed.cells] == [5, 5]
    axis = grids.plan(("cfg_scale", [4]), ("seed", [1, 2]), {"prompt": "p", "seed": -1})
    assert [cell.params["seed"] for cell in axis.cells] == [1, 2]
