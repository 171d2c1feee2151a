"""The typed forms of the parameter tables (qvac_nb/request_types.py) cannot drift from the tables, and a
type checker reading `diffusion(**params: Unpack[DiffusionKwargs])` catches a misspelt or mistyped
parameter."""

from __future__ import annotations

import dataclasses
import importlib.util
import pickle
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from qvac_nb import request_types, schema, video_schema

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_request_types", ROOT / "tools" / "gen_request_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_module_is_what_the_tables_generate() -> None:
    assert _generator().render() == (ROOT / "qvac_nb" / "request_types.py").read_text(encoding="utf-8"), (
        "qvac_nb/request_types.py is out of date: run python tools/gen_request_types.py")


@pytest.mark.parametrize(("kwargs", "table", "named"), [
    (request_types.DiffusionKwargs, schema.DIFFUSION, ("model_id", "prompt")),
    (request_types.VideoKwargs, video_schema.VIDEO, ("model_id", "prompt")),
    (request_types.UpscaleKwargs, schema.UPSCALE, ("model_id", "image")),
    (request_types.ModelConfig, schema.MODEL_CONFIG, ()),
])
def test_each_kwargs_dict_lists_its_table(kwargs: type, table: tuple[schema.Param, ...],
                                          named: tuple[str, ...]) -> None:
    assert list(typing.get_type_hints(kwargs)) == [p.name for p in table if p.name not in named]


def test_each_request_has_a_field_per_parameter() -> None:
    diffusion = [f.name for f in dataclasses.fields(request_types.DiffusionRequest)]
    assert diffusion == [p.name for p in schema.DIFFUSION] + ["family", "model"]
    assert [f.name for f in dataclasses.fields(request_types.UpscaleRequest)] == [p.name for p in schema.UPSCALE]
    video = {f.name for f in dataclasses.fields(video_schema.VideoRequest)}
    assert {p.name for p in video_schema.VIDEO} <= video


def test_the_request_is_frozen_and_pickles() -> None:
    """Validation hands the worker this object as it is (through pickle) and nothing re-shapes it on the way."""
    fields = {f.name: None for f in dataclasses.fields(request_types.UpscaleRequest)}
    request = request_types.UpscaleRequest(**{**fields, "image": np.zeros((2, 2, 3), np.uint8), "repeats": 1})
    copy = pickle.loads(pickle.dumps(request))
    assert type(copy) is request_types.UpscaleRequest and copy.repeats == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.repeats = 2  # type: ignore[misc]


def test_the_signature_shows_the_kwargs_types() -> None:
    import inspect

    import qvac_nb

    sig = inspect.signature(qvac_nb.diffusion)
    assert sig.parameters["init_image"].annotation == request_types.ImageInput | None
    assert str(sig.parameters["init_image"].annotation).count("ImageInput") == 1  # the alias's name, not its union
    assert list(sig.parameters)[:2] == ["model_id", "prompt"]


def test_a_type_checker_catches_a_misspelt_or_mistyped_parameter(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from mypy import api as mypy_api

    import qvac_nb

    source_root = Path(qvac_nb.__file__).resolve().parents[1]
    if "site-packages" not in source_root.parts:  # an editable install: mypy cannot follow its import hook
        monkeypatch.setenv("MYPYPATH", str(source_root))
    good = "import qvac_nb\nqvac_nb.diffusion(model_id='m', prompt='a cat', steps=4, sampling_method='euler')\n"
    bad = ("import qvac_nb\nqvac_nb.diffusion(model_id='m', prompt='a cat', stepz=4)\n"
           "qvac_nb.diffusion(model_id='m', prompt='a cat', sampling_method='eulr')\n"
           "qvac_nb.video(model_id='m', prompt='a cat', fps='fast')\n")
    (tmp_path / "good.py").write_text(good)
    (tmp_path / "bad.py").write_text(bad)
    args = ["--cache-dir", str(tmp_path / "cache"), "--follow-imports", "silent", "--ignore-missing-imports",
            "--python-executable", sys.executable]
    out, _, status = mypy_api.run([*args, str(tmp_path / "good.py")])
    assert status == 0, out
    out, _, status = mypy_api.run([*args, str(tmp_path / "bad.py")])
    assert status == 1
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in lines] == ["2", "3", "4"], out
    assert '"stepz"' in lines[0] and '"steps"' in lines[0]  # mypy also suggests the right name
    assert '"sampling_method"' in lines[1] and "'euler'" in lines[1]  # the engine's sampler names
    assert '"fps"' in lines[2] and '"int' in lines[2]
