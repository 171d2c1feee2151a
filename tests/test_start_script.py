"""tools/start.sh's own logic (options, messages), run against a stand-in venv whose pip and jupyter only
record how they were called: the real install is what the README's fresh-clone check covers."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stand_in_venv(folder: Path, calls: Path) -> Path:
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    record = f'#!/bin/sh\necho "$(basename "$0") $*" >> "{calls}"\n'
    for name in ("python", "jupyter"):
        (bin_dir / name).write_text(record)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\nexport PATH\n')
    return folder


def _start(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QVAC_NB_VENV": str(venv)}
    return subprocess.run(["bash", str(ROOT / "tools" / "start.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_install_only_works_anywhere_among_the_options(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    venv = _stand_in_venv(tmp_path / "venv", calls)
    result = _start(venv, "--no-browser", "--install-only")
    assert result.returncode == 0, result.stderr
    assert f"QVAC_NB_VENV={venv} bash tools/start.sh" in result.stdout  # the advice names the venv used
    assert not any(line.startswith("jupyter ") for line in calls.read_text().splitlines())  # not started


def test_the_other_options_go_to_jupyterlab(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    venv = _stand_in_venv(tmp_path / "venv", calls)
    result = _start(venv, "--port", "8899", "--no-browser")
    assert result.returncode == 0, result.stderr
    [lab] = [line for line in calls.read_text().splitlines() if line.startswith("jupyter ")]
    assert lab.endswith("notebooks/06_studio_tour.ipynb --port 8899 --no-browser"), lab
    assert "06_studio_tour.ipynb" in result.stdout  # says what it opens, whatever JupyterLab prints
