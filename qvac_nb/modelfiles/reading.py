"""Reading model-file headers in Python before the engine opens them.

The engine crashes the process on truncated or malformed files, so every file is
checked here first:

- the header parses within bounds, exactly as strictly as the engine's own strict
  readers. That matters: when ggml's GGUF reader refuses a file the engine retries with
  a lenient reader that trusts every offset and type, and a file that is not valid
  safetensors is handed to the legacy torch parser; neither must ever see a bad file;
- every tensor's bytes lie inside the file, with a dtype the engine can compute with;
- the tensor names tell the model family, and the tensors the engine reads to size the
  network (block counts, widths, head sizes) are all there and consistent, since the
  engine divides by them and indexes with them before it checks anything;
- a companion file (VAE, LLM, text encoder) fits the family of the model it goes with.
This module opens and checks one file (`inspect_file`); the work is split by job:
`formats` (headers), `detection` (family detection and structure checks), `companions`
(companion fit).
"""

from __future__ import annotations

import stat
from pathlib import Path

from ..errors import CorruptModelError, ModelFileError
from .detection import check_structure
from .formats import FileInfo, _parse


def check_regular_file(path: str | Path, role: str) -> Path:
    """`path` as a Path when it is a regular file, else a ModelFileError naming `role` and the path.

    Only a regular file may be opened: opening a FIFO waits for a writer forever, a device such as
    /dev/zero reads without end, and a folder raises a bare IsADirectoryError.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ModelFileError(f"{role}: no file at {path}") from None
    if stat.S_ISDIR(mode):
        raise ModelFileError(f"{role}: {path} is a folder, not a model file")
    if not stat.S_ISREG(mode):
        raise ModelFileError(f"{role}: {path} is not a regular file (a device, pipe or socket?); pass a model file")
    return path


def inspect_file(path: str | Path, role: str = "model") -> FileInfo:
    """Parse and bounds-check a model file's header and the structure of its family.

    Raises ModelFileError when `path` is not a regular file, CorruptModelError before the engine
    would crash on the file.
    """
    path = check_regular_file(path, role)
    try:
        info = _parse(path, role)
    except CorruptModelError as exc:
        message = str(exc)
        raise CorruptModelError(message if message.startswith(f"{role}:") else f"{role}: {message}") from None
    if not info.tensors:
        raise CorruptModelError(f"{role}: {path} holds no tensors")
    check_structure(info, role)
    return info

