"""qvac_nb.convert and `qvac-nb convert`: the engine's converter, run in a process of its own.

The peer's `convert` (stable_diffusion_cpp's binding of the same engine call) is the oracle: both
convert the same file, the results hold the same tensors, and generating from each gives the same
pixels. The engine writes tensors in the order its loader threads meet them, so files are compared
tensor by tensor (name, type, shape, bytes), not only byte for byte.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from helpers import pixels
from testmodels.formats import TensorSpec, write_safetensors

import qvac_nb
from qvac_nb import cli, conversion, engine, models
from qvac_nb.checks import guards

SMALL = {"width": 64, "height": 64, "steps": 2, "cfg_scale": 7.0}
# GGUF metadata value types -> struct format (strings and arrays are read on their own).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_tensors(path: Path) -> dict[str, tuple[int, tuple[int, ...], bytes]]:
    """{name: (ggml type, dims, raw bytes)} of a GGUF file (version 3, little-endian)."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos].decode()

    def value(kind: int) -> Any:
        if kind == 8:
            return string()
        if kind == 9:
            inner, count = take("I"), take("Q")
            return [value(inner) for _ in range(count)]
        return take(_SCALARS[kind])

    assert data[:4] == b"GGUF" and struct.unpack_from("<I", data, 4)[0] == 3
    pos = 8
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = tuple(take("Q") for _ in range(take("I")))
        infos.append((name, dims, take("I"), take("Q")))
    align = int(meta.get("general.alignment", 32))
    start = -(-pos // align) * align
    offsets = sorted({offset for *_, offset in infos} | {len(data) - start})
    ends = dict(zip(offsets, offsets[1:], strict=False))
    out = {}
    for name, dims, kind, offset in infos:
        out[name] = (kind, dims, data[start + offset:start + ends[offset]])
    return out


def safetensors_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """{name: (dtype, shape, raw bytes)} of a safetensors file."""
    data = path.read_bytes()
    size = struct.unpack_from("<Q", data)[0]
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    return {name: (t["dtype"], tuple(t["shape"]), data[8 + size + t["data_offsets"][0]:8 + size + t["data_offsets"][1]])
            for name, t in header.items()}


def _peer(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _peer_convert(src: Path, out: Path, weight_type: str) -> None:
    """The peer's binding of the engine's convert, with the engine CLI's defaults (no VAE, no name conversion)."""
    engine.ensure_loaded()  # the engine's own list: the documented names skip its unused indices
    index = engine.enum_names()["type"].index(weight_type)
    _peer(f"""
        from stable_diffusion_cpp import convert
        assert convert({str(src)!r}.encode(), b"", {str(out)!r}.encode(), {index}, b"", False)
    """)


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "qvac_nb.conversion" in " ".join(p.cmdline())]


def test_q8_0_equals_the_peers_conversion_and_generates_the_same_pixels(sd1_model, tmp_path: Path) -> None:
    from conftest import THREADS

    ticks: list[dict] = []
    ours = qvac_nb.convert(sd1_model.primary, tmp_path / "ours" / "sd1-q8_0.gguf", "q8_0", on_progress=ticks.append)
    assert ours == tmp_path / "ours" / "sd1-q8_0.gguf" and ours.is_file()
    assert sorted(p.name for p in ours.parent.iterdir()) == ["sd1-q8_0.gguf"], "a partial file was left behind"
    theirs = tmp_path / "peer-q8_0.gguf"
    _peer_convert(sd1_model.primary, theirs, "q8_0")

    mine, peer = gguf_tensors(ours), gguf_tensors(theirs)
    assert mine.keys() == peer.keys()
    assert all(mine[name] == peer[name] for name in mine), "a tensor differs from the peer's conversion"
    q8_0 = 8
    source = gguf_tensors(sd1_model.primary)
    changed = [name for name, (kind, _, _) in mine.items() if kind == q8_0 and source[name][0] != q8_0]
    assert len(changed) > 100, "the weights were not converted to q8_0"
    # The engine reported its progress, then qvac_nb its own end.
    steps = [t for t in ticks if t["phase"] == "convert" and "step" in t]
    assert steps and steps[-1]["step"] == steps[-1]["total_steps"] == len(mine)
    assert ticks[-1]["phase"] == "done" and ticks[-1]["path"] == str(ours) and ticks[-1]["size"] == ours.stat().st_size

    kw = {"seed": 7, "sampling_method": "euler_a", "scheduler": "discrete", "eta": 0.0, **SMALL}
    model_id = models.load_copy(str(ours), model_config={"threads": THREADS})
    try:
        (png,) = qvac_nb.diffusion(model_id=model_id, prompt="a red boat", **kw).outputs.result(timeout=300)
    finally:
        qvac_nb.unload_model(model_id=model_id)
    out = tmp_path / "peer.npy"
    _peer(f"""
        import numpy as np
        from stable_diffusion_cpp import StableDiffusion
        sd = StableDiffusion(model_path={str(theirs)!r}, n_threads={THREADS}, rng_type="cuda", verbose=False)
        img = sd.generate_image(prompt="a red boat", width=64, height=64, sample_steps=2, cfg_scale=7.0, seed=7,
                                sample_method="euler_a", scheduler="discrete")[0]
        np.save({str(out)!r}, np.asarray(img.convert("RGB")))
    """)
    assert np.array_equal(pixels(png), np.load(out))


def _small_file(path: Path) -> Path:
    """A few float32 tensors the engine converts like any model's (no family needed to convert)."""
    specs = [TensorSpec("probe.conv.weight", (64, 32, 3, 3)),
             TensorSpec("probe.norm.weight", (64,), "ones"),
             TensorSpec("probe.linear.weight", (64, 64))]
    write_safetensors(path, [(s, "f32") for s in specs])
    return path


def test_a_safetensors_destination_gets_safetensors_as_the_peer_writes_it(tmp_path: Path) -> None:
    src = _small_file(tmp_path / "small.safetensors")
    ours = qvac_nb.convert(src, tmp_path / "ours.safetensors", "f16")
    theirs = tmp_path / "peer.safetensors"
    _peer_convert(src, theirs, "f16")
    mine = safetensors_tensors(ours)
    assert mine == safetensors_tensors(theirs)
    assert {dtype for dtype, _, _ in mine.values()} == {"F16"} and len(mine) == 3


def test_bad_types_and_destinations_are_refused_before_any_work(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_work(*_args: object) -> None:
        raise AssertionError("the conversion started")

    monkeypatch.setattr(conversion, "_run_child", no_work)
    src = _small_file(tmp_path / "small.safetensors")
    with pytest.raises(qvac_nb.InvalidParameterError) as caught:
        qvac_nb.convert(src, tmp_path / "x.gguf", "q9_0")
    assert caught.value.param == "weight_type" and "q8_0" in str(caught.value) and "q4_K" in str(caught.value)
    with pytest.raises(qvac_nb.InvalidTypeError):
        qvac_nb.convert(src, tmp_path / "x.gguf", 8)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(qvac_nb.InvalidParameterError) as caught:
        qvac_nb.convert(src, blocker / "x.gguf")
    assert caught.value.param == "out" and "is a file, not a folder" in str(caught.value)
    with pytest.raises(qvac_nb.InvalidParameterError, match="^out: .* exists and is not a regular file"):
        qvac_nb.convert(src, tmp_path)
    with pytest.raises(qvac_nb.InvalidParameterError, match=r"^out: a \.safetensors file holds only f32, f16, bf16"):
        qvac_nb.convert(src, tmp_path / "x.safetensors", "q8_0")
    with pytest.raises(qvac_nb.InvalidParameterError, match="^out: .* is the src file"):
        qvac_nb.convert(src, src, "f16")
    with pytest.raises(qvac_nb.ModelFileError, match="^src: "):
        qvac_nb.convert(tmp_path / "missing.safetensors", tmp_path / "x.gguf")
    with pytest.raises(qvac_nb.UnsupportedOperationError, match="^vae: .* not a VAE"):
        qvac_nb.convert(src, tmp_path / "x.gguf", vae=_small_file(tmp_path / "not-a-vae.safetensors"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "not-a-vae.safetensors", "small.safetensors"]


def test_the_weight_types_are_the_guards() -> None:
    assert conversion.WEIGHT_TYPES == guards.CONVERTIBLE_TYPES
    assert qvac_nb.conversion.check_weight_type("Q4_k") == "q4_K"


def test_cancel_from_on_progress_ends_the_process_and_leaves_nothing(sd1_model, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def stop(info: dict) -> None:
        if info["phase"] == "convert":
            raise Stop

    old = tmp_path / "sd1-q8_0.gguf"
    old.write_bytes(b"the previous file")
    with pytest.raises(Stop):
        qvac_nb.convert(sd1_model.primary, old, "q8_0", on_progress=stop)
    assert old.read_bytes() == b"the previous file", "the destination was touched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sd1-q8_0.gguf"], "a partial file was left behind"
    assert _children() == [], "the conversion's process outlived the cancel"


def test_an_engine_failure_is_an_engine_error_with_the_engines_words(tmp_path: Path) -> None:
    # convert() refuses a missing source itself; handed one anyway, the engine's process fails and says why.
    spec = {"src": str(tmp_path / "missing.safetensors"), "vae": None, "out": str(tmp_path / "out.gguf"),
            "type": "f16"}
    with pytest.raises(qvac_nb.EngineError) as caught:
        conversion._run_child(spec, None, 0.0)
    assert caught.value.param == "src" and "init model loader from file failed" in str(caught.value)
    assert not isinstance(caught.value, qvac_nb.EngineCrashedError)
    assert not (tmp_path / "out.gguf").exists() and _children() == []


def test_the_cli_converts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _small_file(tmp_path / "small.safetensors")
    out = tmp_path / "small-q8_0.gguf"
    assert cli.main(["-q", "convert", str(src), str(out), "--type", "q8_0"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == str(out)
    tensors = gguf_tensors(out)
    assert tensors["probe.linear.weight"][0] == 8  # q8_0
    assert cli.main(["-q", "convert", str(src), str(tmp_path / "y.gguf"), "--type", "q9"]) == cli.EXIT_USAGE
    assert "weight_type: 'q9' is not one of" in capsys.readouterr().err
    assert not (tmp_path / "y.gguf").exists()
