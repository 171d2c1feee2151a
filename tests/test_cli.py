"""The `qvac-nb` command, run as a subprocess against the test models."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import restore_sigint
from PIL import Image
from testmodels import registry

import qvac_nb
from qvac_nb.catalog import CATALOG
from qvac_nb.checks import tables
from qvac_nb.hub.cache import cache_dir
from qvac_nb.hub.sources import url_cache_path
from qvac_nb.png import encode_png

THREADS = os.environ.get("QVAC_NB_TEST_THREADS", "2")


def qvac_nb_cmd(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qvac_nb", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_generate_writes_pngs_with_their_parameters(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    out = tmp_path / "sub" / "out.png"
    result = qvac_nb_cmd("generate", "a lighthouse at dusk", "--model", str(sd1_model.primary), "-o", str(out),
                         "--width", "64", "--height", "128", "--steps", "1", "--seed", "5", "--batch-count", "2",
                         "--negative-prompt", "fog", "--cfg-scale", "5", "--sampler", "euler", "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    paths = [tmp_path / "sub" / "out-1.png", tmp_path / "sub" / "out-2.png"]
    assert result.stdout.split() == [str(p) for p in paths]  # stdout names the files, nothing else
    for seed, path in enumerate(paths, start=5):
        assert png_size(path) == (64, 128)
        params = qvac_nb.read_parameters(path)
        assert params["prompt"] == "a lighthouse at dusk" and params["negative_prompt"] == "fog"
        assert (params["seed"], params["steps"], params["cfg_scale"], params["sampling_method"]) == (seed, 1, 5.0,
                                                                                                       "euler")


def test_a_single_image_keeps_the_output_name(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    out = tmp_path / "one.png"
    result = qvac_nb_cmd("-q", "generate", "a cat", "-m", str(sd1_model.primary), "-o", str(out), "-W", "64", "-H",
                         "64", "--steps", "1", "--cfg-scale", "1", "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (64, 64)
    assert result.stderr == ""  # --quiet


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--width", "65"], "width: 65 is not a size this SD 1.x model can make"),
        (["--sampler", "eulr"], "did you mean 'euler'"),
        (["--strength", "0", "--init-image", "{image}"], "strength: must be in (0.0, 1.0]"),
        # A missing upscaler file is the user's mistake too (a catalogue name would start a download).
        (["--upscale-repeats", "2", "--upscaler", "{dir}/missing.pth"], "missing.pth"),
    ],
    ids=["width", "sampler", "strength", "upscaler"],
)
def test_bad_values_exit_2_with_the_message(tmp_path: Path, sd1_model: registry.TestModel, args: list[str],
                                            expected: str) -> None:
    image = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (90, 120, 200)).save(image)
    args = [a.replace("{image}", str(image)).replace("{dir}", str(tmp_path)) for a in args]
    result = qvac_nb_cmd("generate", "x", "-m", str(sd1_model.primary), "-o", str(tmp_path / "o.png"), "--steps",
                         "1", "--threads", THREADS, *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_bad_values_are_refused_before_the_model_loads(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    """A typo must not cost a multi-GB load (or download) first: the values are checked before loading."""
    out = str(tmp_path / "o.png")
    # The family's size rule applies as soon as the file's header tells the family (SD 1.x: multiples of 64).
    result = qvac_nb_cmd("generate", "x", "-m", str(sd1_model.primary), "-o", out, "--width", "96")
    assert result.returncode == 2 and "96 is not a size this SD 1.x model can make" in result.stderr
    assert "loading" not in result.stderr, result.stderr
    # A model that is not there yet (a URL to download, say): still the value's error, not the model's.
    result = qvac_nb_cmd("generate", "x", "-m", "https://127.0.0.1:9/never.gguf", "-o", out, "--steps", "0")
    assert result.returncode == 2 and "steps: must be between 1 and 150" in result.stderr, result.stderr
    assert "loading" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["generate", "x", "--model", "SD_V2_1_1B_Q9_0"], "did you mean 'SD_V2_1_1B_Q8_0'"),
        (["generate", "x", "--steps", "many"], "argument --steps: invalid int value"),
        (["generate", "x", "-o", "out.jpg"], "must end in .png"),
        (["generate", "x", "--init-image", "no-such.png"], "--init-image: no image file"),
        (["generate", "x", "--model-config", "{oops"], "--model-config: not valid JSON"),
        (["generate", "x", "--upscaler", "REALESRGAN_X4PLUS"], "add --upscale"),
        (["upscale", "no-such.png"], "image: no file at no-such.png"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "usage: qvac-nb"),
    ],
    ids=["model", "int", "suffix", "init", "json", "upscaler", "upscale-input", "command", "no-command"],
)
def test_usage_errors_exit_2_before_loading_anything(tmp_path: Path, args: list[str], expected: str) -> None:
    result = subprocess.run([sys.executable, "-m", "qvac_nb", *args], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "QVAC_NB_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()  # nothing was downloaded


def test_upscale_writes_a_4x_png(tmp_path: Path, esrgan_model: registry.TestModel) -> None:
    source = tmp_path / "in.jpg"  # small: the upscaler's work grows with the pixels
    Image.new("RGB", (24, 16), (200, 80, 40)).save(source, quality=90)
    out = tmp_path / "big.png"
    result = qvac_nb_cmd("upscale", str(source), "-o", str(out), "--model", str(esrgan_model.primary),
                         "--tile-size", "64", "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (96, 64)
    assert result.stdout.strip() == str(out)


def test_upscaling_a_generated_png_keeps_its_parameters(tmp_path: Path, esrgan_model: registry.TestModel) -> None:
    source = tmp_path / "made.png"
    params = {"prompt": "a red door", "seed": 9, "steps": 3, "width": 16, "height": 16}
    # Small: the upscaler's work grows with the pixels.
    source.write_bytes(encode_png(np.full((16, 16, 3), 120, np.uint8), params))
    result = qvac_nb_cmd("-q", "upscale", str(source), "--model", str(esrgan_model.primary), "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "made-upscaled.png"  # the default name
    assert png_size(out) == (64, 64)
    assert qvac_nb.read_parameters(out) == params


def test_upscale_of_a_diffusion_model_is_a_usage_error(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(source)
    result = qvac_nb_cmd("upscale", str(source), "--model", str(sd1_model.primary))
    assert result.returncode == 2, result.stderr
    assert "not an ESRGAN upscaler" in result.stderr and "Traceback" not in result.stderr


def test_models_lists_the_catalogue_and_what_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    entry = CATALOG["REALESRGAN_X4PLUS_ANIME_6B"]
    env = {"QVAC_NB_CACHE": str(cache), "HF_HUB_CACHE": str(tmp_path / "hub")}
    target = cache / url_cache_path(entry.url).relative_to(cache_dir())
    target.parent.mkdir(parents=True)
    with open(target, "wb") as f:
        f.truncate(entry.size)  # sparse: right size, no real bytes needed
    table = qvac_nb_cmd("models", env=env)
    assert table.returncode == 0, table.stderr
    for name in CATALOG:
        assert name in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("REALESRGAN_X4PLUS_ANIME_6B "))
    assert row.rstrip().endswith("yes") and "17.9 MB" in row
    assert f"cache folder: {cache}" in table.stdout

    listing = json.loads(qvac_nb_cmd("models", "--json", env=env).stdout)
    cached = {row["name"]: row["cached"] for row in listing["catalog"]}
    assert cached["REALESRGAN_X4PLUS_ANIME_6B"] == str(target)
    assert cached["SD_V2_1_1B_Q8_0"] is None
    assert listing["cache_dir"] == str(cache)


def test_info_names_the_engine_and_the_cache(tmp_path: Path) -> None:
    result = qvac_nb_cmd("info", "--json", env={"QVAC_NB_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert Path(info["engine library"]).is_file()
    assert info["backend"].endswith("CPU") and info["threads (default)"] >= 1
    assert info["cache folder"] == str(tmp_path)
    text = qvac_nb_cmd("info").stdout
    assert "engine library:" in text and "cache folder:" in text


def test_the_installed_script_and_python_m_work() -> None:
    script = shutil.which("qvac-nb", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("qvac-nb is not installed next to this Python")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "generate" in result.stdout
    result = subprocess.run([sys.executable, "-m", "qvac_nb.cli", "generate", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--upscale-repeats" in result.stdout and "(default 512)" in result.stdout


def test_ctrl_c_cancels_the_job_and_exits_130(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qvac_nb", "generate", "x", "-m", str(sd1_model.primary), "-o",
         str(tmp_path / "o.png"), "-W", "64", "-H", "64", "--steps", "150", "--threads", THREADS],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=restore_sigint,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while "sample" not in "".join(seen):  # the first progress tick: sampling has started
        assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)
        time.sleep(0.2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    reader.join(timeout=10)
    assert time.monotonic() - started < 60  # cancelled, not run to the end
    assert "interrupted" in "".join(seen) and "Traceback" not in "".join(seen)
    assert not (tmp_path / "o.png").exists()


def test_hires_and_reference_image_flags(tmp_path: Path, sd1_model: registry.TestModel) -> None:
    out = tmp_path / "hires.png"
    result = qvac_nb_cmd("generate", "a lighthouse", "--model", str(sd1_model.primary), "-o", str(out), "--width", "64",
                         "--height", "64", "--steps", "1", "--cfg-scale", "1", "--seed", "5", "--threads", THREADS,
                         "--hires", '{"scale": 2, "steps": 1, "upscaler": "nearest"}')
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (128, 128)  # the hires pass really ran: 2 x 64
    assert qvac_nb.read_parameters(out)["hires"]["scale"] == 2
    bad = qvac_nb_cmd("generate", "x", "--model", str(sd1_model.primary), "-o", str(out), "--hires", "[1]")
    assert bad.returncode == 2 and "--hires" in bad.stderr

    from qvac_nb import cli

    args = cli.build_parser().parse_args(["generate", "x", "--ref-image", "a.png", "--ref-image", "b.png",
                                          "--no-auto-resize-ref-image", "--hires", "on"])
    given = cli._given(args, qvac_nb.schema.DIFFUSION)
    assert (given["init_images"], given["auto_resize_ref_image"], given["hires"]) == (["a.png", "b.png"], False, True)


def _option_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every option's help text as --help prints it (argparse's %% unescaped), by its longest flag."""
    return {max(a.option_strings, key=len): (a.help or "").replace("%%", "%")
            for a in parser._actions if a.option_strings}


def _subparser(name: str) -> argparse.ArgumentParser:
    from qvac_nb import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["generate", "batch", "video", "upscale"])
def test_help_speaks_the_command_line_not_the_api(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from qvac_nb import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for api_word in ("True", "False", "None", "dict", "diffusion()", "video()", "below"):
        assert not re.search(rf"(?<![\w-]){re.escape(api_word)}(?![\w-])", text), api_word
    for flag, help_text in _option_helps(_subparser(command)).items():
        if help_text.endswith(")") and "(default " in help_text:
            # One level of brackets: "(default 7.0; FLUX.2: 1.0)", not "(default 7.0 (FLUX.2: 1.0))".
            assert not re.search(r"[()]", help_text.rsplit("(default ", 1)[1][:-1]), (flag, help_text)
    for name, flag in cli._flag_of().items():  # parameters are named by their flags: --vae-tiling, not vae_tiling
        assert not re.search(rf"(?<![\w-]){name}(?![\w-])", text), (name, flag)


def test_generate_help_values_are_accepted_by_the_parser() -> None:
    import re

    from qvac_nb import cli, engine

    helps = _option_helps(_subparser("generate"))
    assert "(default 7.0; " in helps["--cfg-scale"] and "FLUX.2: 1.0" in helps["--cfg-scale"]
    assert helps["--steps"].endswith("(default 20; Z-Image: 8)")
    hires = helps["--hires"]
    # Every hires key the help lists, set to the default it names, in the JSON form the help describes.
    listed = dict(re.findall(r"(\w+): [^;]*?, default ([\w.]+)", hires.split("these keys")[1]))
    assert set(listed) == {p.name for p in qvac_nb.schema.HIRES}
    keys = {name: json.loads(value) if re.fullmatch(r"[\d.]+", value) else value for name, value in listed.items()}
    layers = re.search(r"\(default ([\d,]+)", helps["--skip-layers"]).group(1)
    sigmas = re.search(r"e\.g\. (\S+) for", helps["--sigmas"]).group(1)
    for hires_value in ("on", "off", json.dumps(keys)):
        argv = ["generate", "a fox", "--hires", hires_value, "--skip-layers", layers, "--sigmas", sigmas,
                "--no-vae-tiling", "--cache-preset", "fast", "--steps", str(len(sigmas.split(",")) - 1)]
        args = cli.build_parser().parse_args(argv)
        given = cli._given(args, qvac_nb.schema.DIFFUSION)
        values = tables.validate(qvac_nb.schema.DIFFUSION, {"prompt": args.prompt, **given},
                                         where="diffusion", names=engine.enum_names())
        assert values["skip_layers"] == (7, 8, 9) and values["sigmas"] == (14.6, 7.8, 3.5, 0.0)
        if hires_value == "off":
            assert values["hires"] is None
        else:  # 'on' and the listed defaults are the same second pass
            assert values["hires"] == keys and values["vae_tiling"] is False
