"""`qvac_nb.convert`: rewrite a model file with its weights in another type, ahead of time.

The engine can quantize while loading (model_config["type"]), but then it does so at every load.
`convert` writes the converted file once, as the engine's own converter does (`sd-cli -M convert`):
GGUF, or safetensors when the destination's name ends in ".safetensors" (float types only).

The engine runs in a child process of its own (`python -c ... qvac_nb.conversion`): a crash on a
file the checks let through, or running out of memory, ends that process and not the notebook's kernel,
and cancelling ends it too. The child reports the engine's progress as JSON lines on its stdout.
(Named `conversion`, not `convert`, so the module never shadows the function on the package, as
`grids`/`grid` and `batching`/`batch` do.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checks.values import check_choice, check_path, check_writable_file
from .errors import (
    EngineCrashedError,
    EngineError,
    InvalidParameterError,
    InvalidTypeError,
    UnsupportedOperationError,
)

# The weight types the engine converts every tensor to (guards.CONVERTIBLE_TYPES, repeated here so that
# the child process does not import the guards' numpy); tests/test_convert.py checks they agree.
WEIGHT_TYPES = ("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K",
                "q6_K", "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_nl", "iq4_xs",
                "tq1_0", "tq2_0", "mxfp4", "nvfp4")
SAFETENSORS_TYPES = ("f32", "f16", "bf16")  # safetensors has no dtype for ggml's block types
TICK_S = 0.5  # a phase tick with the elapsed time when the engine has said nothing for this long
KILL_WAIT_S = 5.0
TAIL_LINES = 12
_MARK = "\x1eqvac_nb-convert "  # starts the child's own stdout lines; anything else is the engine printing
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_BOOTSTRAP = "import sys; sys.path[0] = sys.argv.pop(1); from qvac_nb.conversion import _child; _child(sys.argv[1])"

log = logging.getLogger("qvac_nb.convert")
engine_log = logging.getLogger("qvac_nb.engine")
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)


def convert(
    src: str | bytes | os.PathLike[str],
    out: str | bytes | os.PathLike[str],
    weight_type: str = "q8_0",
    *,
    vae: str | bytes | os.PathLike[str] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Convert a model file to `weight_type` and write it to `out`; returns the written path.

    Parameters
    ----------
    src : str, bytes or path
        The model to convert: a local file (.safetensors, .ckpt/.pt, .gguf), a catalogue constant,
        an https:// URL or hf://owner/repo/path[@revision] (downloaded first).
    out : str, bytes or path
        The file to write. A name ending in ".safetensors" writes safetensors (f32, f16 or bf16
        only); any other name writes GGUF. An existing file is replaced, only once the conversion
        has succeeded: the new file is written next to it under a temporary name, then renamed.
    weight_type : str
        The weight type: one of f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K ... q6_K, iq*,
        tq1_0, tq2_0, mxfp4, nvfp4 (`qvac_nb.conversion.WEIGHT_TYPES`). Default 'q8_0'. Tensors the
        engine keeps in a wider type (norms, biases, rows that are not whole blocks) stay as they are.
    vae : str, bytes, path or None
        A separate VAE file to include (under the engine's "vae." prefix), as `sd-cli -M convert
        --vae` does. Default None.
    on_progress : callable or None
        Called with a dict per update: {"phase": "download", ...} while fetching `src`/`vae`;
        {"phase": "convert", "step", "total_steps", "percentage", "elapsed_ms"} as the engine reads
        and converts tensors; {"phase": "write", "elapsed_ms"} every half second while it writes;
        {"phase": "done", "elapsed_ms", "path", "size"} at the end. Raising from it cancels: the
        conversion's process ends and the partial file is removed. Default None.

    Returns
    -------
    pathlib.Path
        `out`, converted.

    Raises QvacError subclasses naming the parameter: a bad `weight_type` (listing the allowed types)
    or an unwritable `out` before any work, ModelFileError/CorruptModelError for `src`/`vae`, and
    EngineError (EngineCrashedError if its process died) when the engine fails. KeyboardInterrupt
    (the notebook's stop button) ends the conversion as well and is raised again.
    """
    src = check_path("src", src) or ""
    out_name = check_path("out", out) or ""
    vae = check_path("vae", vae, allow_none=True)
    if not src:
        raise InvalidParameterError("src: must name a model file, a catalogue constant, an https URL or hf://...")
    if not out_name:
        raise InvalidParameterError("out: must name the file to write")
    weight_type = check_weight_type(weight_type)
    if on_progress is not None and not callable(on_progress):
        raise InvalidTypeError("on_progress: expected a callable taking one dict", param="on_progress")
    dest = check_writable_file("out", out_name)
    safetensors = dest.name.endswith(".safetensors")  # the engine's own test of the output format
    if safetensors and weight_type not in SAFETENSORS_TYPES:
        raise InvalidParameterError(
            f"out: a .safetensors file holds only {', '.join(SAFETENSORS_TYPES)} weights, not {weight_type}; "
            f"name it .gguf for {weight_type}", param="out")
    src_path = _input_file(src, "src", on_progress)
    vae_path = _input_file(vae, "vae", on_progress) if vae else None
    for name, path in (("src", src_path), ("vae", vae_path)):
        if path is not None and dest.exists() and os.path.samefile(path, dest):
            raise InvalidParameterError(f"out: {str(dest)!r} is the {name} file; write the converted model elsewhere",
                                        param="out")
    dest.parent.mkdir(parents=True, exist_ok=True)  # check_writable_file leaves no folder behind
    # The engine creates the file itself (so it gets the usual permissions) under a name of its own; the
    # suffix keeps the format the destination's name asks for.
    partial = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.partial{'.safetensors' if safetensors else '.gguf'}"
    start = time.monotonic()
    try:
        _run_child({"src": str(src_path), "vae": str(vae_path) if vae_path else None, "out": str(partial),
                    "type": weight_type}, on_progress, start)
        os.replace(partial, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    if on_progress is not None:
        on_progress({"phase": "done", "path": str(dest), "size": dest.stat().st_size,
                     "elapsed_ms": (time.monotonic() - start) * 1000})
    return dest


def check_weight_type(value: Any) -> str:
    """`weight_type` as the engine names it, or InvalidParameterError listing the types it converts to."""
    return str(check_choice("weight_type", value, WEIGHT_TYPES))


def _input_file(src: str, role: str, on_progress: Callable[[dict[str, Any]], None] | None) -> Path:
    """A local, header-checked file for `src` (downloaded first if needed): the engine crashes on malformed files."""
    from .hub.resolve import resolve_for
    from .modelfiles.reading import inspect_file

    path, _ = resolve_for(src, role, on_progress)
    info = inspect_file(path, role)
    if role == "vae" and info.family != "vae":
        raise UnsupportedOperationError(f"vae: {Path(path).name} is a {info.family} file, not a VAE", param="vae")
    return Path(path)


# ---------------------------------------------------------------- the kernel's side of the child


def _run_child(spec: dict[str, Any], on_progress: Callable[[dict[str, Any]], None] | None, start: float) -> None:
    """Run the engine's convert in a child process, relaying its progress; ends the child on any exception."""
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # Ctrl-C reaches this process, which ends the child itself
    else:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, _PACKAGE_PARENT, json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, **kwargs)
    lines: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_read_child, args=(proc, lines, tail), name="qvac_nb-convert-output", daemon=True)
    reader.start()
    phase, error = "convert", None

    def report(info: dict[str, Any]) -> None:
        if on_progress is not None:
            on_progress({**info, "elapsed_ms": (time.monotonic() - start) * 1000})

    try:
        while True:
            try:
                msg = lines.get(timeout=TICK_S)
            except queue.Empty:
                report({"phase": phase})
                continue
            if msg is None:  # the child's output ended: it has exited or is about to
                break
            if "tick" in msg:
                step, total = msg["tick"]
                report({"phase": "convert", "step": step, "total_steps": total,
                        "percentage": 100.0 * step / total if total else 0.0})
                if total and step >= total:
                    phase = "write"  # every tensor read and converted: the engine writes the file now
            elif "log" in msg:
                level, text = msg["log"]
                py_level = _LEVELS[min(max(int(level), 0), 3)]
                if engine_log.isEnabledFor(py_level):
                    engine_log.log(py_level, "%s", text)
            elif "error" in msg:
                error = msg["error"]
        code = proc.wait(KILL_WAIT_S * 4)
    except BaseException:
        _end(proc)
        raise
    finally:
        reader.join(KILL_WAIT_S)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    if error is not None:
        raise EngineError(f"src: {error}", param="src")
    if code != 0:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        raise EngineCrashedError(
            f"src: the engine's conversion process ended with {how}; last output:\n  " + "\n  ".join(tail),
            exit_code=code, last_output=list(tail))


def _read_child(proc: subprocess.Popen[bytes], lines: queue.SimpleQueue[dict[str, Any] | None],
                tail: deque[str]) -> None:
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip()
            if text.startswith(_MARK):
                try:
                    lines.put(json.loads(text[len(_MARK):]))
                    continue
                except ValueError:
                    pass
            if text:
                tail.append(text)  # what the engine printed itself (an assertion before an abort)
    finally:
        lines.put(None)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_WAIT_S)


# ---------------------------------------------------------------- the child


def _say(**message: Any) -> None:
    sys.stdout.write(_MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def _watch_parent(parent: int) -> None:
    """End the child when the kernel is gone: its stdin closes, or (POSIX) it is reparented."""

    def stdin_closed() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        os._exit(1)

    def reparented() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=stdin_closed, daemon=True).start()
    if os.name == "posix":
        threading.Thread(target=reparented, daemon=True).start()


def _child(spec_json: str) -> None:
    """Entry point of the conversion process: convert what the spec names, report on stdout, exit."""
    _watch_parent(os.getppid())
    spec = json.loads(spec_json)
    from . import _engine, engine
    from .errors import EngineLibraryError

    try:
        engine.ensure_loaded()
    except EngineLibraryError as exc:
        _say(error=str(exc))
        sys.exit(1)
    _engine.set_log_handler(lambda level, text: _say(log=[level, text.decode("utf-8", "replace").rstrip()]))
    job = _engine.Job()
    job.on_progress = lambda step, total, _secs, _phase: _say(tick=[step, total])
    type_index = _engine.enum_names()["type"].index(spec["type"])
    try:
        _engine.convert(spec["src"], spec["vae"], spec["out"], type_index, "", False, job)
    except _engine.EngineError as exc:
        _say(error=str(exc))
        sys.exit(1)
    sys.stdout.flush()
    os._exit(0)  # nothing to tidy: skip the interpreter's teardown of the engine's globals
