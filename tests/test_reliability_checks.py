"""The pre-flight file checks and the guards on their own, without the engine (fast)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from reliability_files import (
    gguf_kv,
    read_gguf_layout,
    read_st_header,
    repack_st,
    st_tensors,
    write_gguf,
    write_sparse,
    write_st,
)
from testmodels import registry

from qvac_nb.checks import guards
from qvac_nb.errors import CorruptModelError, InvalidParameterError, UnsupportedOperationError
from qvac_nb.modelfiles.companions import check_companion
from qvac_nb.modelfiles.detection import detect_family
from qvac_nb.modelfiles.reading import inspect_file


def fake_model(family: str, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(model_id=f"fake-{family}-{id(extra)}", family=family, default_scheduler="discrete",
                           files={}, config={}, upscale_factor=4, **extra)


def params(**kw: Any) -> dict[str, Any]:
    return {"width": 64, "height": 64, "steps": 2, "scheduler": None, "clip_skip": -1, "vae_tiling": False, **kw}


# ---------------------------------------------------------------- guards


def test_scheduler_and_clip_skip_guards() -> None:
    with pytest.raises(InvalidParameterError, match="^steps: the gits scheduler"):
        guards.check_diffusion(fake_model("sd1"), params(scheduler="gits", steps=1), None)
    guards.check_diffusion(fake_model("sd1"), params(scheduler="gits", steps=2), None)
    guards.check_diffusion(fake_model("sd1"), params(scheduler="ays"), None)
    for family in ("sd2", "flux2", "sd3"):
        with pytest.raises(UnsupportedOperationError, match="^scheduler: 'ays'"):
            guards.check_diffusion(fake_model(family), params(scheduler="ays"), None)
    with pytest.raises(InvalidParameterError, match="^clip_skip"):
        guards.check_diffusion(fake_model("sd1"), params(clip_skip=12), None)
    guards.check_diffusion(fake_model("sd1"), params(clip_skip=11), None)
    guards.check_diffusion(fake_model("sd2"), params(clip_skip=12), None)  # OpenCLIP ViT-H has 24 layers


@pytest.mark.parametrize("shape,ok", [((8, 8), False), ((15, 64), False), ((24, 24), False), ((16, 300), False),
                                      ((16, 16), True), ((17, 33), True), ((128, 16), True), ((768, 1024), True)])
def test_flux2_reference_sizes(shape: tuple[int, int], ok: bool) -> None:
    init = np.zeros((*shape, 3), np.uint8)
    call = lambda: guards.check_diffusion(fake_model("flux2"), params(), init)  # noqa: E731
    if ok:
        call()
    else:
        with pytest.raises(InvalidParameterError, match="^init_image: with auto_resize_ref_image=False, FLUX.2"):
            call()


def test_memory_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guards, "available_memory", lambda: 4 * 2**30)
    guards.check_diffusion(fake_model("sd1"), params(width=512, height=512), None)
    with pytest.raises(InvalidParameterError, match=r"^width: 1024x1024 needs about .* attention"):
        guards.check_diffusion(fake_model("sd1"), params(width=1024, height=1024), None)
    fa = fake_model("sd1", )
    fa.config = {"diffusion_fa": True}
    with pytest.raises(InvalidParameterError, match=r"vae decode.*vae_tiling=True"):
        guards.check_diffusion(fa, params(width=2048, height=2048), None)
    guards.check_diffusion(fa, params(width=2048, height=2048, vae_tiling=True), None)
    with pytest.raises(InvalidParameterError, match=r"^image: upscaling 4096x4096 x4"):
        guards.check_upscale(fake_model("esrgan"), np.zeros((4096, 4096, 3), np.uint8), 1)
    monkeypatch.setattr(guards, "available_memory", lambda: None)  # unknown: no guard
    guards.check_diffusion(fake_model("sd1"), params(width=4096, height=4096), None)


def test_weight_types() -> None:
    guards.check_load_config({"type": "q4_K"})
    for bad in ("q8_K", "q8_1", "i32", "f64"):
        with pytest.raises(InvalidParameterError, match="^model_config.type"):
            guards.check_load_config({"type": bad})


# ---------------------------------------------------------------- file checks


def _refused(path: Path, match: str) -> None:
    with pytest.raises(CorruptModelError, match=match):
        inspect_file(path, "model_src")


def test_gguf_strictness(tmp_path: Path) -> None:
    src = registry.get("flux2").files["llm"]
    for i, extra in enumerate([
        gguf_kv("general.alignment", 5, struct.pack("<i", 32)),  # ggml asserts on a non-u32 alignment
        gguf_kv("general.architecture", 8, struct.pack("<Q", 5) + b"qwen3"),  # a second copy of the key
        gguf_kv("x.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 1) + b"\0" * 4),
    ]):
        layout = read_gguf_layout(src)
        layout.extra_kv.append(extra)
        _refused(write_gguf(tmp_path / f"kv{i}.gguf", layout), "alignment|twice|not supported")
    layout = read_gguf_layout(src)
    layout.tensors[1].name = layout.tensors[0].name
    _refused(write_gguf(tmp_path / "dup.gguf", layout), "appears twice")
    layout = read_gguf_layout(src)
    layout.tensors[0].name = "x" * 130
    _refused(write_gguf(tmp_path / "long.gguf", layout), "longer than 127")
    layout = read_gguf_layout(src)
    write_gguf(tmp_path / "packed.gguf", layout)
    layout.tensors[3].offset += 32
    _refused(write_gguf(tmp_path / "gap.gguf", layout, repack=False), "expected")
    layout = read_gguf_layout(src)
    layout.tensors = [t for t in layout.tensors if t.name != "blk.1.ffn_up.weight"]
    _refused(write_gguf(tmp_path / "no-ffn.gguf", layout), "blk.1.ffn_up.weight")


def test_safetensors_strictness(tmp_path: Path) -> None:
    good = st_tensors([("conv.weight", (4, 4), "F32")])
    raw = st_bytes_of(good)
    for i, text in enumerate([raw.replace(b"[4,4]", b"[4,NaN]"), raw.replace(b"[4,4]", b'["4",4]'),
                              raw.replace(b'"F32"', b'"I16"'), raw.replace(b"{", b'{"\\ud800":1,', 1)]):
        path = tmp_path / f"st{i}.safetensors"
        body = text[8:]
        write_sparse(path, struct.pack("<Q", len(body)) + body, 8 + len(body) + 64)
        _refused(path, "not valid JSON|malformed shape|cannot load|dtype")


def st_bytes_of(header: dict) -> bytes:
    from reliability_files import st_bytes

    return st_bytes(header)


def test_vae_and_esrgan_structure(tmp_path: Path) -> None:
    header = read_st_header(registry.get("flux2").files["vae"])
    header["decoder.conv_in.weight"]["shape"][0] = 96  # 24 channels: not GroupNorm(32)-able
    _refused(write_st(tmp_path / "vae.safetensors", repack_st(header)), "conv_in")
    header = read_st_header(registry.get("esrgan_anime6b_st").primary)
    del header["body.3.rdb2.conv4.weight"]
    _refused(write_st(tmp_path / "esrgan.safetensors", repack_st(header)), "body.3.rdb2.conv4.weight")


def test_legacy_pickle_and_bad_zip(tmp_path: Path) -> None:
    legacy = tmp_path / "old.pth"
    legacy.write_bytes(pickle.dumps({"conv_first.weight": [0.0] * 64}, 2))
    _refused(legacy, "legacy")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    _refused(broken, "zip")


def test_companions_fit_the_family(tmp_path: Path) -> None:
    flux2 = registry.get("flux2")
    dit = inspect_file(flux2.files["diffusion_model"])
    check_companion(dit, "vae_model_src", inspect_file(flux2.files["vae"]))
    check_companion(dit, "llm_model_src", inspect_file(flux2.files["llm"]))
    with pytest.raises(UnsupportedOperationError, match="^model_config.vae_model_src: .* not a VAE"):
        check_companion(dit, "vae_model_src", inspect_file(flux2.files["llm"]))
    with pytest.raises(UnsupportedOperationError, match="^model_config.clip_l_model_src: FLUX.2 models do not"):
        check_companion(dit, "clip_l_model_src", inspect_file(flux2.files["llm"]))
    sd1 = inspect_file(registry.get("sd1").primary)
    with pytest.raises(UnsupportedOperationError, match="needs a SD 1.x/2.x/XL VAE"):
        check_companion(sd1, "vae_model_src", inspect_file(flux2.files["vae"]))


def test_family_detection() -> None:
    assert detect_family(["enc.blk.0.attn_q.weight", "token_embd.weight"]) == "text_encoder"  # T5, not an LLM
    assert detect_family(["blk.0.attn_q.weight", "token_embd.weight"]) == "llm"
    assert detect_family(["double_stream_modulation_img.lin.weight", "double_blocks.0.x"]) == "flux2"
