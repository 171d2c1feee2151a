"""Fuzzing the model-file pre-flight check with mutated and truncated headers of the test models.

Every mutant must either pass `inspect_file` or be refused with a QvacError (never any
other exception); and the mutants it passes are then loaded by the engine, in a child
process, which must not crash on any of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_files import (
    GgufLayout,
    gguf_kv,
    read_gguf_layout,
    read_st_header,
    read_zip_members,
    repack_st,
    st_bytes,
    st_data_size,
    write_gguf,
    write_sparse,
    write_zip,
)
from reliability_worker import run_items
from testmodels import registry
from testmodels.esrgan import rrdbnet_tensors
from testmodels.torch_zip import write_torch_zip

from qvac_nb.errors import QvacError
from qvac_nb.modelfiles.companions import check_companion
from qvac_nb.modelfiles.reading import inspect_file

Draw = Callable[[int, int], int]
EXAMPLES = int(os.environ.get("QVAC_NB_FUZZ_EXAMPLES", "0")) or None
ENGINE_SAMPLE_PER_BASE = 4
STATS: dict[str, dict[str, int]] = {}
ACCEPTED: dict[str, dict[str, Path]] = {}  # base -> {digest: path}


@dataclass
class Base:
    name: str
    kind: str  # gguf, st, pth
    path: Path
    role: str  # how the engine test loads it: model, llm, vae, upscaler
    companion_key: str | None = None  # model_config key when it is a companion of FLUX.2


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def bases(work: Path) -> dict[str, Base]:
    flux2 = registry.get("flux2")
    small_pth = work / "esrgan-1block.pth"
    write_torch_zip(small_pth, [(s, "f32") for s in rrdbnet_tensors(1)], wrapper="params_ema")
    out = [
        Base("flux2_dit", "gguf", flux2.files["diffusion_model"], "model"),
        Base("qwen3_llm", "gguf", flux2.files["llm"], "llm", "llm_model_src"),
        Base("sd1", "gguf", registry.get("sd1").primary, "model"),
        Base("flux2_vae", "st", flux2.files["vae"], "vae", "vae_model_src"),
        Base("esrgan_st", "st", registry.get("esrgan_anime6b_st").primary, "upscaler"),
        Base("esrgan_pth", "pth", small_pth, "upscaler"),
    ]
    return {b.name: b for b in out}


@pytest.fixture(scope="module")
def flux2_info() -> Any:
    return inspect_file(registry.get("flux2").files["diffusion_model"])


# ---------------------------------------------------------------- mutations


def _pick(draw: Draw, items: list[Any]) -> Any:
    return items[draw(0, len(items) - 1)]


def _odd_dim(draw: Draw, d: int) -> int:
    return _pick(draw, [0, 1, 2, 3, d + 1, max(d - 1, 0), d * 2, d // 2, 7, 32, 128, 1 << 20, 1 << 40, 1 << 63,
                        (1 << 64) - 1])


def _odd_name(draw: Draw, name: str, others: list[str]) -> str:
    digits = [i for i, c in enumerate(name) if c.isdigit()]
    options = [name + "x", "x" + name, name.replace("weight", "bias"), _pick(draw, others), "", "a" * 200,
               name.replace(".", "_"), name.upper(), name + ".0"]
    if digits:
        i = _pick(draw, digits)
        options += [name[:i] + str(draw(0, 9)) + name[i + 1:], name[:i] + "99999" + name[i + 1:]]
    return _pick(draw, options)


def mutate_gguf(src: Path, dst: Path, draw: Draw) -> str:
    layout: GgufLayout = read_gguf_layout(src)
    names = [t.name for t in layout.tensors]
    kind = _pick(draw, ["drop", "rename", "dim", "ndims", "type", "offset", "kv", "version", "flip", "cut_header",
                        "cut_data", "count"])
    repack, extra = True, 0
    t = layout.tensors[draw(0, len(layout.tensors) - 1)]
    if kind == "drop":
        for _ in range(draw(1, 3)):
            if len(layout.tensors) > 1:
                layout.tensors.pop(draw(0, len(layout.tensors) - 1))
    elif kind == "rename":
        t.name = _odd_name(draw, t.name, names)
    elif kind == "dim":
        j = draw(0, len(t.dims) - 1)
        t.dims = tuple(_odd_dim(draw, d) if k == j else d for k, d in enumerate(t.dims))
    elif kind == "ndims":
        t.dims = t.dims[:-1] if len(t.dims) > 1 and draw(0, 1) else t.dims + (_pick(draw, [1, 2, 3]),)
    elif kind == "type":
        t.type = draw(0, 45)
    elif kind == "offset":
        repack = False
        write_gguf(dst, layout)  # packs offsets first
        t.offset = max(0, t.offset + _pick(draw, [-64, -32, -1, 1, 32, 64, 1 << 30, 1 << 62]))
    elif kind == "kv":
        layout.extra_kv.append(_pick(draw, [
            gguf_kv("general.alignment", 5, struct.pack("<i", 32)),  # int32: ggml would assert
            gguf_kv("general.alignment", 4, struct.pack("<I", draw(0, 100))),
            gguf_kv("general.alignment", 4, struct.pack("<I", 1 << draw(0, 31))),
            gguf_kv("general.architecture", 8, struct.pack("<Q", 4) + b"flux"),  # duplicate key
            gguf_kv("x.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 1) + b"\0" * 4),
            gguf_kv("x.bad", draw(13, 40), b"\0" * 8),
            gguf_kv("x.huge_string", 8, struct.pack("<Q", 1 << 40)),
            gguf_kv("x.array", 9, struct.pack("<IQ", 4, 1 << 30)),
        ]))
    elif kind == "version":
        layout.version = _pick(draw, [0, 1, 4, 0x03000000, 0xFFFFFFFF])
    elif kind == "count":
        pass  # patched below
    if kind in ("flip", "cut_header", "cut_data", "count"):
        shutil.copyfile(src, dst) if src.stat().st_size < 64 << 20 else _sparse_copy(src, dst)
        with open(dst, "rb") as f:  # the header only, not the (up to 600 MB) data after it
            data = bytearray(f.read(_header_len(src)))
        if kind == "flip":
            for _ in range(draw(1, 8)):
                data[draw(0, len(data) - 1)] = draw(0, 255)
            _patch(dst, bytes(data))
        elif kind == "count":
            field_at = _pick(draw, [8, 16])
            value = struct.unpack_from("<Q", data, field_at)[0]
            _patch(dst, struct.pack("<Q", _pick(draw, [0, value - 1, value + 1, 1 << 40])), at=field_at)
        elif kind == "cut_header":
            write_sparse(dst, bytes(data), draw(0, len(data) - 1))
        else:
            size = src.stat().st_size
            os.truncate(dst, draw(len(data), size - 1))
        return kind
    write_gguf(dst, layout, repack=repack, extra=extra)
    return kind


def _header_len(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"GGUF":
        from reliability_files import gguf_header

        return len(gguf_header(read_gguf_layout(path))[0])
    return 8 + struct.unpack("<Q", head)[0]


def _sparse_copy(src: Path, dst: Path) -> None:
    n = _header_len(src)
    with open(src, "rb") as f:
        write_sparse(dst, f.read(n), src.stat().st_size)


def _patch(path: Path, data: bytes, at: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def mutate_st(src: Path, dst: Path, draw: Draw) -> str:
    header = read_st_header(src)
    names = [n for n in header if n != "__metadata__"]
    name = _pick(draw, names)
    meta = header[name]
    kind = _pick(draw, ["drop", "rename", "dim", "rank", "dtype", "offsets", "types", "metadata", "flip", "length",
                        "cut_header", "cut_data", "json"])
    repack = True
    if kind == "drop":
        for _ in range(draw(1, 3)):
            header.pop(_pick(draw, [n for n in header if n != "__metadata__"]), None)
    elif kind == "rename":
        header[_odd_name(draw, name, names)] = header.pop(name)
    elif kind == "dim":
        j = draw(0, len(meta["shape"]) - 1)
        meta["shape"][j] = _odd_dim(draw, meta["shape"][j])
    elif kind == "rank":
        meta["shape"] = meta["shape"][:-1] if draw(0, 1) else meta["shape"] + [1] * draw(1, 4)
    elif kind == "dtype":
        meta["dtype"] = _pick(draw, ["F32", "F16", "BF16", "I32", "I64", "I16", "I8", "U8", "BOOL", "F64", "F8_E4M3",
                                     "F8_E5M2", "Q4_0", "f32", "", "C64"])
        if draw(0, 1):
            repack = False  # keep the byte range: a size mismatch
    elif kind == "offsets":
        repack = False
        header = repack_st(header)
        header[name]["data_offsets"] = _pick(draw, [[0, 0], [-4, 4], [1, 1 + header[name]["data_offsets"][1]
                                                                        - header[name]["data_offsets"][0]],
                                                    [0, 1 << 62], [5, 3], [0]])
    elif kind == "types":
        field = _pick(draw, ["dtype", "shape", "data_offsets"])
        meta[field] = _pick(draw, [None, "3", 3.0, [3.5], ["3"], {"a": 1}, True, [True, 1], []])
        repack = False
    elif kind == "metadata":
        header["__metadata__"] = _pick(draw, [{"format": "pt"}, [1, 2], "x", None, {"k": {"nested": [1]}}])
    if kind in ("flip", "length", "cut_header", "cut_data", "json"):
        n = _header_len(src)
        with open(src, "rb") as f:
            data = bytearray(f.read(n))
        size = src.stat().st_size
        if kind == "flip":
            for _ in range(draw(1, 8)):
                data[draw(8, len(data) - 1)] = _pick(draw, [draw(0, 255), ord('"'), ord("{"), ord("]"), ord(","), 0])
            write_sparse(dst, bytes(data), size)
        elif kind == "length":
            struct.pack_into("<Q", data, 0, _pick(draw, [0, 1, 2, n - 9, n - 7, size, size - 7, 1 << 63]))
            write_sparse(dst, bytes(data), size)
        elif kind == "json":
            text = data[8:].decode()
            text = _pick(draw, [text.replace("1", "NaN", 1), text.replace('"', "'", 1),
                                text[:-1] + "\x00", text.replace("{", '{"\\ud800":1,', 1),
                                text.rstrip() + ',"x"', text.replace(":", "::", 1)])
            raw = text.encode()
            write_sparse(dst, struct.pack("<Q", len(raw)) + raw, size)
        elif kind == "cut_header":
            write_sparse(dst, bytes(data), draw(0, len(data) - 1))
        else:
            write_sparse(dst, bytes(data), draw(len(data), size - 1))
        return kind
    if repack:
        try:
            header = repack_st(header)
        except (KeyError, TypeError):
            pass
    raw = st_bytes(header)
    write_sparse(dst, raw, len(raw) + max(st_data_size(header), 0))
    return kind


def mutate_pth(src: Path, dst: Path, draw: Draw) -> str:
    members = read_zip_members(src)
    pkl = next(n for n in members if n.endswith("data.pkl"))
    kind = _pick(draw, ["flip_pickle", "cut_pickle", "drop_member", "short_storage", "rename_pickle", "cut_zip",
                        "flip_zip", "protocol"])
    if kind == "flip_pickle":
        data = bytearray(members[pkl])
        for _ in range(draw(1, 6)):
            data[draw(0, len(data) - 1)] = draw(0, 255)
        members[pkl] = bytes(data)
    elif kind == "cut_pickle":
        members[pkl] = members[pkl][:draw(0, len(members[pkl]) - 1)]
    elif kind == "protocol":
        members[pkl] = b"\x80" + bytes([_pick(draw, [0, 1, 6, 2, 5])]) + members[pkl][2:]
    elif kind == "drop_member":
        storages = [n for n in members if "/data/" in n]
        members.pop(_pick(draw, storages))
    elif kind == "short_storage":
        storages = [n for n in members if "/data/" in n]
        victim = _pick(draw, storages)
        members[victim] = members[victim][:draw(0, max(len(members[victim]) - 1, 0))]
    elif kind == "rename_pickle":
        members[pkl.replace("data.pkl", "date.pkl")] = members.pop(pkl)
    write_zip(dst, members)
    if kind in ("cut_zip", "flip_zip"):
        data = bytearray(dst.read_bytes())
        if kind == "cut_zip":
            data = data[:draw(0, len(data) - 1)]
        else:
            for _ in range(draw(1, 6)):
                data[draw(0, len(data) - 1)] = draw(0, 255)
        dst.write_bytes(bytes(data))
    return kind


MUTATORS = {"gguf": mutate_gguf, "st": mutate_st, "pth": mutate_pth}


def check_mutant(base: Base, path: Path, flux2_info: Any, kind: str) -> str:
    """'accepted' or 'refused'; any exception that is not a QvacError fails the test."""
    stats = STATS.setdefault(base.name, {"accepted": 0, "refused": 0})
    try:
        info = inspect_file(path, "model_src")
        if base.companion_key:
            check_companion(flux2_info, base.companion_key, info)
    except QvacError:
        stats["refused"] += 1
        return "refused"
    except Exception as exc:
        raise AssertionError(f"{base.name} mutant ({kind}) made inspect_file raise {type(exc).__name__}: {exc}") \
            from exc
    stats["accepted"] += 1
    keep = ACCEPTED.setdefault(base.name, {})
    if len(keep) < 50:
        digest = hashlib.sha256(_header_bytes(path)).hexdigest()[:16]
        if digest not in keep:
            saved = path.parent / "accepted" / f"{base.name}-{digest}{path.suffix}"
            saved.parent.mkdir(exist_ok=True)
            _copy_sparse_aware(path, saved)
            keep[digest] = saved
    return "accepted"


def _header_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4 << 20) + str(path.stat().st_size).encode()


def _copy_sparse_aware(src: Path, dst: Path) -> None:
    size = src.stat().st_size
    if size > 64 << 20:
        with open(src, "rb") as f:
            write_sparse(dst, f.read(4 << 20), size)
    else:
        shutil.copyfile(src, dst)


def _fuzz(bases: dict[str, Base], work: Path, flux2_info: Any, names: list[str], data: Any) -> None:
    base = bases[names[data.draw(st.integers(0, len(names) - 1), label="base")]]
    draw: Draw = lambda lo, hi: data.draw(st.integers(lo, hi))  # noqa: E731
    dst = work / f"mutant-{base.name}{base.path.suffix}"
    kind = MUTATORS[base.kind](base.path, dst, draw)
    check_mutant(base, dst, flux2_info, kind)


FUZZ = settings(max_examples=EXAMPLES or 400, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data())
def test_gguf_mutants(bases: dict[str, Base], work: Path, flux2_info: Any, data: Any) -> None:
    _fuzz(bases, work, flux2_info, ["flux2_dit", "qwen3_llm", "sd1"], data)


@FUZZ
@given(data=st.data())
def test_safetensors_mutants(bases: dict[str, Base], work: Path, flux2_info: Any, data: Any) -> None:
    _fuzz(bases, work, flux2_info, ["flux2_vae", "esrgan_st"], data)


@settings(FUZZ, max_examples=EXAMPLES or 250)
@given(data=st.data())
def test_pth_mutants(bases: dict[str, Base], work: Path, flux2_info: Any, data: Any) -> None:
    _fuzz(bases, work, flux2_info, ["esrgan_pth"], data)


def test_fuzz_volume() -> None:
    """At least 1,000 mutants went through the check (skipped when the fuzz tests were deselected)."""
    total = sum(s["accepted"] + s["refused"] for s in STATS.values())
    if total == 0:
        pytest.skip("the fuzz tests did not run in this session")
    Path(os.environ.get("QVAC_NB_FUZZ_REPORT", os.devnull)).write_text(json.dumps(STATS, indent=1))
    assert total >= 1000 or EXAMPLES, STATS


def _load_items(bases: dict[str, Base], work: Path) -> list[dict[str, Any]]:
    """Engine loads for a sample of accepted mutants, each with the companions its role needs."""
    flux2 = registry.get("flux2")
    companions = {"llm_model_src": str(flux2.files["llm"]), "vae_model_src": str(flux2.files["vae"])}
    if not ACCEPTED:  # run alone: make a sample with seeded random mutations
        for base in bases.values():
            rng = random.Random(base.name)
            for i in range(60):
                dst = work / f"seeded-{base.name}-{i}{base.path.suffix}"
                kind = MUTATORS[base.kind](base.path, dst, rng.randint)
                check_mutant(base, dst, inspect_file(flux2.files["diffusion_model"]), kind)
    items = []
    for name, accepted in sorted(ACCEPTED.items()):
        base = bases[name]
        rng = random.Random(name)
        for path in rng.sample(sorted(accepted.values()), min(ENGINE_SAMPLE_PER_BASE, len(accepted))):
            item: dict[str, Any] = {"name": f"{name}:{path.name}"}
            if base.role == "upscaler":
                item.update(primary=str(path), config={"mode": "upscale"})
            elif base.role == "model" and name == "sd1":
                item.update(primary=str(path), config={})
            elif base.role == "model":
                item.update(primary=str(path), config=dict(companions))
            else:
                item.update(primary=str(flux2.files["diffusion_model"]),
                            config={**companions, base.companion_key: str(path)})
            items.append(item)
    return items


@pytest.fixture(scope="module")
def engine_results(bases: dict[str, Base], work: Path) -> dict[str, dict[str, Any]]:
    items = _load_items(bases, work)
    assert items, "no mutant passed the check, so there is nothing to load"
    (work / "engine").mkdir(exist_ok=True)
    results = run_items(items, work / "engine", env={})
    summary = {"total": len(results), "crashed": sum(1 for r in results.values() if r.get("crashed")),
               "loaded": sum(1 for r in results.values() if r.get("loaded")),
               "generated": sum(1 for r in results.values() if r.get("generated")),
               "refused_by_engine": sum(1 for r in results.values() if r.get("error"))}
    Path(os.environ.get("QVAC_NB_FUZZ_ENGINE_REPORT", os.devnull)).write_text(
        json.dumps({"summary": summary, "results": results}, indent=1, default=str))
    return results


def test_accepted_mutants_do_not_crash_the_engine(engine_results: dict[str, dict[str, Any]]) -> None:
    crashed = {name: r for name, r in engine_results.items() if r.get("crashed")}
    assert not crashed, json.dumps(crashed, indent=1)[:4000]
    foreign = {name: r["error"] for name, r in engine_results.items() if r.get("error") and not r.get("qvac")}
    assert not foreign, foreign  # what the engine refuses still surfaces as a QvacError


def test_engine_load_failures_are_qvac_errors(work: Path) -> None:
    """A file that passes the header check but that the engine refuses (a weight of the wrong shape)."""
    flux2 = registry.get("flux2")
    layout = read_gguf_layout(flux2.files["diffusion_model"])
    for t in layout.tensors:
        if t.name == "img_in.weight":
            t.dims = (t.dims[0], t.dims[1] // 2)
    mutant = write_gguf(work / "flux2-img-in-half.gguf", layout)
    inspect_file(mutant)  # passes the pre-flight check
    item = {"name": "wrong-shape", "primary": str(mutant),
            "config": {"llm_model_src": str(flux2.files["llm"]), "vae_model_src": str(flux2.files["vae"])}}
    (work / "wrong-shape").mkdir(exist_ok=True)
    env: dict[str, str] = {}
    (record,) = run_items([item], work / "wrong-shape", env=env).values()
    assert not record.get("crashed") and not record["loaded"], record
    assert record["qvac"], record["error"]
