"""What a second round of probing (issue 23, beyond its list) found, each fixed and checked here.

- `read_parameters(path)` of a FIFO blocked for ever; of /dev/zero it read until the OOM killer came.
- `load_model("/proc/self/mem")` (a "regular file" that cannot be read) raised a raw OSError.
- A 10-million-character prompt crashed the engine worker (SIGSEGV: the prompt parser's recursion).
- `Studio(output_dir=...)` took a file or a read-only folder and failed every save after making the image
  (in tests/test_destinations.py with the other destinations).
Each risky call runs in a child process with a bounded time and address space, so a regression fails
the test instead of hanging or exhausting the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import qvac_nb
from qvac_nb.checks.values import MAX_TEXT_CHARS, check_text

BOUND_S = 120.0  # a bound on a regressed (blocking) call, not a speed requirement

_CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY))
    import qvac_nb
    try:
        {call}
        print(json.dumps({{"error": None}}))
    except qvac_nb.QvacError as exc:
        print(json.dumps({{"error": type(exc).__name__, "param": exc.param, "message": str(exc)}}))
""")


def _outcome(call: str, cwd: Path) -> dict[str, object]:
    """How `call` ended in a child process: its QvacError's class, param and message, or no error."""
    try:
        result = subprocess.run([sys.executable, "-c", _CHILD.format(call=call)], cwd=cwd, capture_output=True,
                                text=True, timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call} still blocked after {BOUND_S} s")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_read_parameters_of_a_path_that_is_not_a_png_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = {"fifo": tmp_path / "stray.png", "dev-zero": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    outcome = _outcome(f"qvac_nb.read_parameters({str(path)!r})", tmp_path)
    assert outcome["error"] == "InvalidParameterError" and outcome["param"] == "png", outcome
    assert "not a regular file" in str(outcome["message"]) and str(path) in str(outcome["message"])


def test_read_parameters_still_reads_a_png_file(tmp_path: Path) -> None:
    """The path form still works: a PNG with a record made by qvac_nb's writer."""
    from qvac_nb import png

    data = png.encode_png(np.zeros((8, 8, 3), np.uint8), {"prompt": "a fox", "steps": 3})
    (tmp_path / "a.png").write_bytes(data)
    params = qvac_nb.read_parameters(tmp_path / "a.png")
    assert params["prompt"] == "a fox" and params["steps"] == 3


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_a_model_file_that_cannot_be_read_is_a_model_file_error(tmp_path: Path) -> None:
    outcome = _outcome("qvac_nb.load_model('/proc/self/mem')", tmp_path)
    assert outcome["error"] == "ModelFileError" and "cannot read /proc/self/mem" in str(outcome["message"]), outcome


def test_a_prompt_longer_than_the_limit_is_refused_before_the_engine(sd1_id: str) -> None:
    for name in ("prompt", "negative_prompt"):
        kwargs = {"prompt": "a fox", name: "fox " * (MAX_TEXT_CHARS // 4 + 1)}
        with pytest.raises(qvac_nb.InvalidParameterError, match=f"^{name}: at most 1,000,000 characters") as caught:
            qvac_nb.diffusion(model_id=sd1_id, width=64, height=64, steps=1, **kwargs)
        assert caught.value.param == name
    # At the limit it is a prompt like any other (encoding it would take minutes here: checked without the engine).
    assert check_text("prompt", "x" * MAX_TEXT_CHARS) == "x" * MAX_TEXT_CHARS
