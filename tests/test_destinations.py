"""Inputs and destinations checked before any work: a LoRA that is not a regular file, an unwritable output.

A LoRA given as a FIFO, a device or a folder is refused at once naming `lora` (before, opening a FIFO
blocked diffusion() for ever, /dev/zero was read without end, a folder raised a bare IsADirectoryError).
An output that cannot be written is refused before any model loads (before, batch() and the CLI made
every image first and then lost them all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from conftest import THREADS
from PIL import Image
from test_cli import qvac_nb_cmd
from testmodels import registry

import qvac_nb
from qvac_nb.batching import local
from qvac_nb.checks.values import check_writable_folder

BOUND_S = 300.0  # a bound on a regressed (blocking) call, not a speed requirement

# Loads the model, then calls diffusion() with the LoRA and prints how it ended as JSON.
_LORA_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import qvac_nb

    model, config, lora = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    model_id = qvac_nb.load_model(model, model_config=config)
    # A regressed check would read /dev/zero into memory until the machine runs out: stop at 2 GiB.
    resource.setrlimit(resource.RLIMIT_DATA, (2 * 2**30, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    try:
        qvac_nb.diffusion(model_id=model_id, prompt="x", width=64, height=64, steps=1, lora=lora)
        print(json.dumps({"error": None}))
    except qvac_nb.QvacError as exc:
        print(json.dumps({"error": type(exc).__name__, "param": exc.param, "message": str(exc)}))
    finally:
        qvac_nb.unload_model(model_id=model_id)
""")


def _run_bounded(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `args`; past BOUND_S end it and every process it started, and fail."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):  # the engine worker
            child.kill()
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the call still blocked after {BOUND_S} s; stderr: {err[-2000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file where a folder would have to be created."""
    path = tmp_path / "afile"
    path.write_text("in the way")
    return path


# ---------------------------------------------------------------- lora


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_lora_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, sd1_model: registry.TestModel,
                                                              kind: str) -> None:
    if kind == "fifo":
        lora = tmp_path / "lora.safetensors"
        os.mkfifo(lora)
    elif kind == "folder":
        lora = tmp_path / "loras"
        lora.mkdir()
    else:
        lora = Path("/dev/zero")
    config = {"threads": THREADS, **sd1_model.model_config()}
    result = _run_bounded([sys.executable, "-c", _LORA_SCRIPT, str(sd1_model.primary), json.dumps(config),
                           str(lora)])
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["error"] == "ModelFileError" and outcome["param"] == "lora", outcome
    assert outcome["message"].startswith("lora: ") and str(lora) in outcome["message"]


# ---------------------------------------------------------------- batch(output_dir=...)


@pytest.mark.parametrize("where", ["under-a-file", "a-file", "read-only"])
def test_batch_refuses_an_unwritable_output_dir_before_any_work(tmp_path: Path, blocker: Path,
                                                                sd1_model: registry.TestModel, where: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "read-only" and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder nobody (root included) can create files in")
    folder = {"under-a-file": blocker / "out", "a-file": blocker, "read-only": Path("/proc/self")}[where]
    opened: list[int] = []
    real_open = local.LocalBackend.open

    def spy_open(backend: local.LocalBackend, count: int) -> list[str]:
        opened.append(count)
        return real_open(backend, count)

    monkeypatch.setattr(local.LocalBackend, "open", spy_open)  # where a batch's workers load their models
    records: list[object] = []
    with pytest.raises(qvac_nb.InvalidParameterError, match="output_dir") as caught:
        qvac_nb.batch(["a red fox", "a blue whale"], model_src=str(sd1_model.primary), output_dir=folder,
                      model_config={"threads": THREADS, **sd1_model.model_config()}, progress=False,
                      on_record=records.append, width=64, height=64, steps=1)
    assert caught.value.param == "output_dir" and str(folder) in str(caught.value)
    assert opened == [] and records == []  # no worker loaded a model, no item ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("where", ["under-a-file", "a-file", "read-only"])
def test_the_studio_refuses_an_unwritable_output_dir_when_made(tmp_path: Path, blocker: Path, where: str) -> None:
    """Before, the Studio took it and failed each save after making the image; now its constructor says so."""
    from qvac_nb.widgets.studio import Studio

    if where == "read-only" and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder nobody (root included) can create files in")
    folder = {"under-a-file": blocker / "out", "a-file": blocker, "read-only": Path("/proc/self")}[where]
    with pytest.raises(qvac_nb.InvalidParameterError, match="output_dir=None") as caught:
        Studio(output_dir=folder)
    assert caught.value.param == "output_dir" and str(folder) in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_the_folder_check_leaves_nothing_behind(tmp_path: Path) -> None:
    """Folders made for the probe, and the probe itself, are removed again; a usable folder passes."""
    assert check_writable_folder("output_dir", tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_writable_folder("output_dir", tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the CLI's -o


@pytest.mark.parametrize("case", ["generate-under-a-file", "generate-a-folder", "upscale-under-a-file",
                                  "batch-under-a-file", "batch-a-file"])
def test_cli_refuses_an_unwritable_output_before_loading(tmp_path: Path, blocker: Path, case: str,
                                                         request: pytest.FixtureRequest) -> None:
    command, where = case.split("-", 1)
    target = {"under-a-file": blocker / "x.png", "a-folder": tmp_path / "taken.png", "a-file": blocker}[where]
    if where == "a-folder":
        target.mkdir()
    if command == "upscale":
        image = tmp_path / "in.png"
        Image.new("RGB", (32, 32)).save(image)
        model = request.getfixturevalue("esrgan_model").primary
        args = ["upscale", str(image), "-m", str(model), "-o", str(target), "--threads", str(THREADS)]
    else:
        model = request.getfixturevalue("sd1_model").primary
        if command == "batch":
            prompts = tmp_path / "prompts.txt"
            prompts.write_text("a red fox\n")
            args = ["batch", str(prompts), "-o", str(target)]
        else:
            args = ["generate", "a red fox", "-o", str(target)]
        args += ["-m", str(model), "-W", "64", "-H", "64", "--steps", "1", "--threads", str(THREADS)]
    result = qvac_nb_cmd(*args)
    flag = "-o/--output-dir" if command == "batch" else "-o/--output"
    # One line, no traceback, and no "loading ..." line or progress: it stopped before the model loaded.
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    named = target if where == "a-folder" else blocker
    assert result.stderr.startswith(f"qvac-nb: error: {flag}: ") and str(named) in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "in-upscaled.png").exists() and blocker.read_text() == "in the way"
