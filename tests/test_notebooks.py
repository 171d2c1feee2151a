"""Every example notebook runs end to end on the test models and saves the images it should."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TESTS = Path(__file__).resolve().parent
CELL_TIMEOUT_S = 900

# notebook -> {saved image: (width, height)}; test models run at 64x64, ESRGAN multiplies by 4 per pass.
EXPECTED: dict[str, dict[str, tuple[int, int]]] = {
    "01_sd21_minimal": {"01_sd21_minimal.png": (64, 64)},
    "02_flux2_klein_split": {"02_flux2_klein.png": (64, 64)},
    "03_img2img": {"03_sdedit.png": (64, 64), "03_flux2_in_context.png": (64, 64)},
    "04_esrgan_paired": {"04_upscaled_x4.png": (256, 256), "04_upscaled_x16.png": (1024, 1024)},
    "05_standalone_upscale": {"05_upscaled.png": (256, 256)},
    "06_studio_tour": {"06_studio.png": (64, 64)},
}

# What the notebooks print from the jobs' stats (x16: two upscale passes of the paired upscaler).
PRINTED = {"04_esrgan_paired": ("upscaled to 256x256", "upscaled to 1024x1024")}


def test_every_notebook_is_covered_and_stored_clean() -> None:
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(EXPECTED)
    for name in names:
        book = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name} has stored outputs"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_on_test_models(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("QVAC_NB_EXAMPLES_USE_TEST_MODELS", "1")
    monkeypatch.setenv("QVAC_NB_EXAMPLES_OUT", str(tmp_path))
    monkeypatch.setenv("QVAC_NB_TEST_MODELS_SRC", str(TESTS))
    # A "python3" kernelspec may say just "python": make that this venv's.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    before = set(NOTEBOOKS.rglob("*"))
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    # The kernel works in the test's folder: a Studio's history folder (qvac_nb_outputs/ in the working
    # folder) must not land in the checkout.
    client = NotebookClient(book, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    outputs = [out for cell in book.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    for words in PRINTED.get(name, ()):
        assert words in printed, f"{name} did not print {words!r}: {printed}"
    shown = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(shown) >= len(EXPECTED[name]), "the notebook should display every image it saves"

    assert set(NOTEBOOKS.rglob("*")) == before, "a notebook wrote into the checkout"
    for filename, size in EXPECTED[name].items():
        path = tmp_path / "outputs" / filename
        assert path.is_file(), f"{name} did not save {filename}"
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == size
