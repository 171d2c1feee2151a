"""A Jupyter kernel spec running an older ipykernel (no widget subshells, as in Colab) from a folder of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def write_kernelspec(kernels_dir: Path, ipykernel_dir: Path | None) -> str:
    """Writes a kernel spec: this Python with `ipykernel_dir` first on PYTHONPATH; returns its name.

    None: the venv's own ipykernel.
    """
    folder_name = ipykernel_dir.name if ipykernel_dir is not None else "venv-ipykernel"
    name = f"qvac-{folder_name}"
    # The folder shadows the venv's ipykernel 7; the rest of the path stays (the qvac_nb under test).
    path = os.pathsep.join(p for p in (str(ipykernel_dir or ""), os.environ.get("PYTHONPATH", "")) if p)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({folder_name})",
        "language": "python",
        "env": {"PYTHONPATH": path},
    }
    folder = kernels_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec))
    return name
