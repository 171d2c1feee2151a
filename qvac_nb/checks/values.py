"""The checks behind every parameter of qvac_nb.schema, one per kind of value.

Each failure raises a QvacError subclass whose message names the parameter and what
it accepts (with the closest valid name suggested for misspellings) and whose `param`
attribute is that parameter's name.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, overload

from ..errors import InvalidParameterError, InvalidTypeError, UnknownParameterError, suggest

MAX_UPSCALE_REPEATS = 3  # also declared in qvac_nb.schema, which imports these helpers


def check_unknown(kind: str, given: Iterable[str], allowed: Iterable[str], *, nested: bool = False) -> None:
    """Refuse keys not in `allowed`; `kind` is the function or, with `nested`, the dict parameter they belong to."""
    allowed = list(allowed)
    nested = nested or kind.startswith("model_config")
    for key in given:
        if key not in allowed:
            raise UnknownParameterError(
                f"{kind}: unknown {'key' if kind == 'model_config' else 'parameter'} '{key}'{suggest(key, allowed)}; "
                f"allowed: {', '.join(sorted(allowed))}",
                param=kind if nested else key,
            )


def check_str(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """`value` as a str the engine can take: no NUL (C strings end there) and encodable as UTF-8."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a string, got {type(value).__name__}", param=name)
    # A lone surrogate (e.g. "\ud800" from a bad decode) has no UTF-8 form; the binding would
    # raise TypeError only after the job was queued.
    return _check_encodable(name, value, lambda v: v.encode("utf-8"), "a lone surrogate that is not valid text")


# The engine's prompt parser recurses once per character: the worker's 512 MiB engine stack
# (worker/server.py) holds about 1.6 million characters, and a 10-million-character prompt crashed
# the worker (SIGSEGV). A million is far above any prompt written by hand and below that edge.
MAX_TEXT_CHARS = 1_000_000


def check_text(name: str, value: Any) -> str:
    """A prompt: a string the engine can take (see `check_str`) of at most MAX_TEXT_CHARS characters."""
    text = check_str(name, value)
    assert text is not None
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParameterError(f"{name}: at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}; "
                                    "shorten it", param=name)
    return text


def _check_encodable(name: str, value: str, encode: Any, what: str) -> str:
    """`value` without NULs (C strings end there) and encodable by `encode`; `what` names a bad character."""
    if "\x00" in value:
        raise InvalidParameterError(f"{name}: must not contain NUL characters", param=name)
    try:
        encode(value)
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise InvalidParameterError(f"{name}: contains {bad!r} at position {exc.start}, {what}", param=name) from None
    return value


@overload
def check_path(name: str, value: Any, *, allow_none: Literal[False] = False) -> str: ...
@overload
def check_path(name: str, value: Any, *, allow_none: bool) -> str | None: ...


def check_path(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """A file path or model source as str: any name the OS accepts, including names that are not UTF-8.

    bytes and os.PathLike are accepted and turned into str with os.fsdecode, so a file name such as
    b"model\\xff.gguf" becomes "model\\udcff.gguf" (surrogateescape) and reaches the engine as its
    original bytes. Lone surrogates that do not stand for a byte, and NULs, are refused.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bytes, os.PathLike)):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a str, bytes or path, got {type(value).__name__}", param=name)
    return _check_encodable(name, value, os.fsencode, "which is not part of any file name")


def check_writable_folder(name: str, folder: str | os.PathLike[str]) -> Path:
    """`folder` as a Path once a file could be written in it; InvalidParameterError naming `name` otherwise.

    Checked before any work so that nothing made is lost on an unwritable destination. Writing a probe
    file is the only test that holds everywhere (read-only mounts, ACLs, quotas; root ignores permission
    bits). Folders made for the probe are removed again: the check leaves nothing behind.
    """
    path = Path(folder).expanduser()
    made: list[Path] = []
    try:
        missing = _missing_folders(name, path)
        for part in reversed(missing):
            try:
                part.mkdir()
            except FileExistsError:  # made meanwhile by someone else: theirs to keep
                continue
            made.append(part)
        handle, probe = tempfile.mkstemp(prefix=".qvac_nb-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidParameterError(f"{name}: cannot write into the folder {str(path)!r} "
                                    f"({exc.strerror or exc})", param=name) from None
    finally:
        for part in reversed(made):
            try:
                part.rmdir()
            except OSError:  # something was saved there meanwhile
                break
    return path


def _missing_folders(name: str, path: Path) -> list[Path]:
    """The folders of `path` that do not exist yet, deepest first; refuses a file standing in the way."""
    missing: list[Path] = []
    existing = path
    while not existing.is_dir() and existing != existing.parent:
        if existing.exists():
            where = "" if existing == path else f"cannot create the folder {str(path)!r}: "
            raise InvalidParameterError(f"{name}: {where}{str(existing)!r} is a file, not a folder", param=name)
        missing.append(existing)
        existing = existing.parent
    return missing


def check_writable_file(name: str, file: str | os.PathLike[str]) -> Path:
    """`file` as a Path once it could be written: not a folder or a device, in a writable folder."""
    path = Path(file).expanduser()
    if os.path.exists(path) and not os.path.isfile(path):  # a folder or a FIFO: the write fails or blocks
        raise InvalidParameterError(f"{name}: {str(path)!r} exists and is not a regular file", param=name)
    check_writable_folder(name, path.parent)
    return path


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name}: expected True or False, got {value!r}", param=name)
    return value


def check_int(name: str, value: Any, lo: int, hi: int, *, multiple_of: int = 1, extra: Iterable[int] = ()) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidTypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}", param=name)
    value = int(value)
    if value in tuple(extra):
        return value
    if not lo <= value <= hi:
        also = "".join(f" or {e}" for e in extra)
        raise InvalidParameterError(f"{name}: must be between {lo} and {hi}{also}, got {value}", param=name)
    if value % multiple_of:
        down, up = value - value % multiple_of, value - value % multiple_of + multiple_of
        raise InvalidParameterError(
            f"{name}: must be a multiple of {multiple_of}, got {value} (try {down} or {up})", param=name
        )
    return value


def check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}", param=name)
    value = float(value)
    if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise InvalidParameterError(f"{name}: must be in {bracket}{lo}, {hi}], got {value}", param=name)
    return value


def normalize_name(value: str) -> str:
    value = value.strip().lower().replace(" ", "_").replace("-", "_")
    return re.sub(r"^dpmpp", "dpm++", value)


def check_choice(name: str, value: Any, allowed: Iterable[str], *, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    allowed = list(allowed)
    if not isinstance(value, str):
        raise InvalidTypeError(
            f"{name}: expected one of {', '.join(allowed)}, got {type(value).__name__}", param=name
        )
    candidates = {normalize_name(a): a for a in allowed}
    key = normalize_name(value)
    if key in candidates:
        return candidates[key]
    raise InvalidParameterError(
        f"{name}: '{value}' is not one of {', '.join(allowed)}{suggest(value, allowed)}", param=name
    )


def check_upscale(value: Any) -> int:
    """`upscale=True | {"repeats": N}` as a repeat count (0 = no upscale)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, Mapping):
        check_unknown("upscale", value.keys(), ["repeats"], nested=True)
        return check_int("upscale.repeats", value.get("repeats", 1), 1, MAX_UPSCALE_REPEATS)
    raise InvalidTypeError(f"upscale: expected True, False, None or {{'repeats': N}}, got {value!r}", param="upscale")
