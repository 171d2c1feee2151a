"""Issue 13: every input converted with its real range, or refused with a QvacError naming the parameter."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from testmodels.registry import TestModel as Model

import qvac_nb
from qvac_nb import png as png_module
from qvac_nb.checks.values import check_path, check_str
from qvac_nb.errors import CorruptModelError, InvalidParameterError
from qvac_nb.images import to_rgb_array
from qvac_nb.modelfiles.reading import inspect_file

# ---------------------------------------------------------------- images


def _encoded(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def test_16_bit_png_is_scaled_not_clipped() -> None:
    gradient = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(1, 256).repeat(4, axis=0)
    data = _encoded(Image.fromarray(gradient))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    rgb = to_rgb_array("init_image", data)
    # 65535 -> 255, 32896 -> 128, 0 -> 0: the gradient keeps its shape (clipping made it almost all 255).
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 256, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert np.array_equal(rgb[0, :, 0], np.round(gradient[0] / 257).astype(np.uint8))


def test_float_tiff_in_0_1_is_scaled() -> None:
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(1, 256)
    rgb = to_rgb_array("init_image", _encoded(Image.fromarray(ramp, mode="F"), "TIFF"))
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and 120 <= rgb[0, 128, 0] <= 135


def test_float_image_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"^init_image: .*\[0, 1\], found \[0, 7\]"):
        to_rgb_array("init_image", Image.fromarray(np.array([[0.0, 7.0]], dtype=np.float32), mode="F"))


def test_32_bit_integer_tiff_is_scaled_by_its_range() -> None:
    values = np.array([[0, 2**30, 2**31 - 1]], dtype=np.int32)
    rgb = to_rgb_array("init_image", _encoded(Image.fromarray(values, mode="I"), "TIFF"))
    assert list(rgb[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "1", "L", "RGBA", "YCbCr", "I;16B"])
def test_every_mode_pillow_reads_gives_rgb(mode: str) -> None:
    rgb = to_rgb_array("init_image", Image.new(mode, (5, 3)))
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8


def test_palette_and_cmyk_keep_their_colours() -> None:
    red = Image.new("RGB", (4, 4), (200, 10, 30))
    assert tuple(to_rgb_array("x", _encoded(red.convert("P", palette=Image.Palette.ADAPTIVE)))[0, 0]) == (200, 10, 30)
    cmyk = to_rgb_array("x", _encoded(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG", quality=100))
    assert cmyk[0, 0, 0] > 240 and cmyk[0, 0, 1] < 15


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (8, 4), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 2, 4))  # white stripe on the left
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    rgb = to_rgb_array("init_image", _encoded(image, "JPEG", exif=exif, quality=100))
    assert rgb.shape == (8, 4, 3)  # portrait, as viewers show it
    assert rgb[0, :, 0].mean() > 200 and rgb[-1, :, 0].mean() < 50  # the stripe is now on top


@pytest.mark.parametrize(
    ("array", "found"),
    [
        (np.array([[-1.0, 0.0, 1.0]]), r"\[-1, 1\]"),
        (np.array([[0.0, 255.0]], dtype=np.float32), r"\[0, 255\]"),
        (np.array([[0, 300]], dtype=np.int32), r"int32, found \[0, 300\]"),
        (np.array([[0, 65535]], dtype=np.uint16), r"uint16, found \[0, 65535\]"),
    ],
)
def test_arrays_outside_the_accepted_ranges_are_refused(array: np.ndarray, found: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"^init_image: .*{found}"):
        to_rgb_array("init_image", array)


def test_float_array_in_range_and_nan_refused() -> None:
    assert list(to_rgb_array("x", np.array([[0.0, 0.5, 1.0]]))[0, :, 0]) == [0, 128, 255]
    with pytest.raises(InvalidParameterError, match="NaN"):
        to_rgb_array("x", np.array([[np.nan, 0.5]]))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [9000, 14000, 20000])  # ours < Pillow's warning < Pillow's error
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    with pytest.raises(InvalidParameterError, match=r"^init_image: .*too large"):
        to_rgb_array("init_image", _png_header_only(side, side))


# ---------------------------------------------------------------- strings and paths


def test_lone_surrogate_is_refused_naming_the_parameter() -> None:
    with pytest.raises(InvalidParameterError, match=r"^prompt: .*surrogate"):
        check_str("prompt", "a cat \ud800")
    assert check_str("prompt", "a cat \u00e9\U0001f600") == "a cat \u00e9\U0001f600"


def test_prompt_with_a_lone_surrogate_fails_at_the_call(sd1_id: str) -> None:
    with pytest.raises(InvalidParameterError, match="^negative_prompt: "):
        qvac_nb.diffusion(model_id=sd1_id, prompt="x", negative_prompt="\udcff", steps=1)


def test_path_checks_accept_os_names() -> None:
    assert check_path("model_src", b"/tmp/m\xff.gguf") == "/tmp/m\udcff.gguf"
    assert check_path("model_src", Path("/tmp/m.gguf")) == "/tmp/m.gguf"
    with pytest.raises(InvalidParameterError, match="^model_src: "):
        check_path("model_src", "/tmp/m\ud800.gguf")  # not a surrogate-escaped byte
    with pytest.raises(InvalidParameterError, match="^model_src: .*NUL"):
        check_path("model_src", b"/tmp/m\x00.gguf")


@pytest.mark.parametrize("form", ["bytes", "fsdecoded str"])
def test_model_whose_file_name_is_not_utf8_loads(esrgan_model: Model, tmp_path: Path, form: str) -> None:
    name = os.fsencode(tmp_path) + b"/upscaler-\xff\xfe.pth"
    shutil.copyfile(esrgan_model.primary, name)
    src = name if form == "bytes" else os.fsdecode(name)
    model_id = qvac_nb.load_model(src, model_type="upscale", model_config={"threads": 2})
    try:
        assert "\\xff\\xfe" in model_id  # shown readably, not as surrogates
        image = np.zeros((16, 16, 3), dtype=np.uint8)
        (png,) = qvac_nb.upscale(model_id=model_id, image=image).outputs.result(timeout=600)
        assert Image.open(io.BytesIO(png)).size == (64, 64)
    finally:
        qvac_nb.unload_model(model_id=model_id)


@pytest.mark.parametrize("src", ["http://127.0.0.1:9/m%00.gguf", "hf://evil/repo/victim--repo/main/x@.."])
def test_bad_sources_are_refused_at_load_model(src: str) -> None:
    # Before: ValueError("embedded null byte") for %00; the hf:// address was accepted.
    with pytest.raises(InvalidParameterError, match="^model_src: "):
        qvac_nb.load_model(src)


# ---------------------------------------------------------------- PNG records


def _png_with_record(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(png_module.JSON_KEY, text)
    return _encoded(Image.new("RGB", (16, 16), (10, 20, 30)), pnginfo=info)


BAD_RECORDS = ["[1, 2]", "{not json", '"text"', "null", "[" * 50_000 + "]" * 50_000, '{"a":' * 40 + "1" + "}" * 40]


@pytest.mark.parametrize("text", BAD_RECORDS, ids=["list", "bad-json", "string", "null", "deep-list", "deep-dict"])
def test_read_parameters_of_an_untrusted_record(text: str) -> None:
    data = _png_with_record(text)
    with pytest.raises(InvalidParameterError, match=r"^png: its qvac_nb text is not a JSON object"):
        qvac_nb.read_parameters(data)
    with pytest.raises(InvalidParameterError, match="^png: "):
        qvac_nb.read_parameters(Image.open(io.BytesIO(data)))
    assert png_module.stored_record(data) == {}


def test_read_parameters_keeps_what_has_the_right_type() -> None:
    data = _png_with_record(json.dumps({"prompt": "a cat", "seed": "abc", "steps": 4, "cfg_scale": [1], "x": 1}))
    assert qvac_nb.read_parameters(data) == {"prompt": "a cat", "steps": 4}
    assert png_module.stored_record(data) == {"prompt": "a cat", "steps": 4, "x": 1}


@pytest.mark.parametrize("text", ['{"seed": "abc", "prompt": "p"}', "[1, 2]", "[" * 50_000 + "]" * 50_000])
def test_upscale_of_a_png_with_an_untrusted_record(upscaler_id: str, text: str) -> None:
    # Before: the bad seed failed int() after the whole upscale, a list failed item assignment.
    (out,) = qvac_nb.upscale(model_id=upscaler_id, image=_png_with_record(text)).outputs.result(timeout=600)
    assert Image.open(io.BytesIO(out)).size == (64, 64)


# ---------------------------------------------------------------- model files


def _rewrite_safetensors(src: Path, dst: Path, header_len: int | None = None, edit=None) -> None:  # noqa: ANN001
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    if edit is not None:
        edit(header)
    raw = json.dumps(header, separators=(",", ":")).encode()
    if header_len is not None:
        assert len(raw) <= header_len
        raw += b" " * (header_len - len(raw))  # trailing spaces: valid JSON, as the format allows
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_safetensors_whose_header_length_starts_with_pk(flux2_model: Model, tmp_path: Path) -> None:
    vae = tmp_path / "vae.safetensors"
    _rewrite_safetensors(flux2_model.files["vae"], vae, header_len=0x14B50)  # 84816 = b"PK\x01\x00..."
    assert vae.read_bytes()[:2] == b"PK"
    assert inspect_file(vae, "vae").format == "safetensors"
    config = {**flux2_model.model_config(), "vae_model_src": str(vae), "threads": 2}
    model_id = qvac_nb.load_model(str(flux2_model.primary), model_config=config)
    qvac_nb.unload_model(model_id=model_id)


def test_safetensors_with_overlapping_offsets_is_refused(flux2_model: Model, tmp_path: Path) -> None:
    def overlap(header: dict) -> None:
        header["encoder.conv_in.bias"]["data_offsets"] = [6912 - 512, 6912]  # inside conv_in.weight
        header["encoder.conv_in.bias"]["shape"] = [128]

    vae = tmp_path / "vae.safetensors"
    _rewrite_safetensors(flux2_model.files["vae"], vae, edit=overlap)
    with pytest.raises(CorruptModelError, match=r"^vae: .*overlap"):
        inspect_file(vae, "vae")
    config = {**flux2_model.model_config(), "vae_model_src": str(vae)}
    with pytest.raises(CorruptModelError, match=r"^model_config.vae_model_src: .*overlap"):
        qvac_nb.load_model(str(flux2_model.primary), model_config=config)


def _pth_with_extra_entry(src: Path, dst: Path, value_opcodes: bytes) -> None:
    """A copy of a torch zip checkpoint whose state dict gains the entry "step": <value_opcodes>."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                at = data.rindex(b"u")  # the SETITEMS that fills the state dict
                data = data[:at] + b"X\x04\x00\x00\x00step" + value_opcodes + data[at:]
            zout.writestr(info, data)


@pytest.mark.parametrize(
    ("opcodes", "match"),
    [
        (b"\x8a\x09" + (2**64).to_bytes(9, "little"), "wider than the 64 bits"),  # LONG1 of 9 bytes
        (b"\x8b\x01\x00\x00\x00\x05", "opcode LONG4"),
    ],
    ids=["long1-9-bytes", "long4"],
)
def test_pth_pickle_the_engine_rejects_is_refused_at_preflight(
    esrgan_model: Model, tmp_path: Path, opcodes: bytes, match: str
) -> None:
    path = tmp_path / "up.pth"
    _pth_with_extra_entry(esrgan_model.primary, path, opcodes)
    with pytest.raises(CorruptModelError, match=f"^model_src: .*{match}"):
        qvac_nb.load_model(str(path), model_type="upscale")


def test_pth_with_a_64_bit_integer_still_loads(esrgan_model: Model, tmp_path: Path) -> None:
    path = tmp_path / "up.pth"
    _pth_with_extra_entry(esrgan_model.primary, path, b"\x8a\x05\x00\x00\x00\x80\x00")  # 2**31, LONG1
    assert inspect_file(path).format == "pth"
    model_id = qvac_nb.load_model(str(path), model_type="upscale", model_config={"threads": 2})
    qvac_nb.unload_model(model_id=model_id)

