"""The engine: locating the stable-diffusion.cpp library and opening it once per process.

`QVAC_NB_SD_LIBRARY` names another build of the same engine release (CUDA, Metal,
Vulkan); otherwise the library that `stable-diffusion-cpp-python` installed is used.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from functools import cache
from pathlib import Path
from typing import cast

from . import _engine
from .errors import EngineLibraryError

LIBRARY_ENV = "QVAC_NB_SD_LIBRARY"
_LIB_NAMES = {"linux": "libstable-diffusion.so", "darwin": "libstable-diffusion.dylib", "win32": "stable-diffusion.dll"}

log = logging.getLogger("qvac_nb.engine")
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
_open_lock = threading.Lock()
__all__ = ["EngineLibraryError", "find_library", "ensure_loaded", "enum_names", "info"]


def find_library() -> Path:
    """The engine library to open: $QVAC_NB_SD_LIBRARY, else the pinned package's build."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise EngineLibraryError(f"{LIBRARY_ENV}={override} does not name a file")
        return path
    spec = importlib.util.find_spec("stable_diffusion_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise EngineLibraryError(
            "stable-diffusion-cpp-python is not installed; reinstall qvac_nb "
            f"(pip install qvac_nb) or set {LIBRARY_ENV} to a libstable-diffusion build"
        )
    lib_dir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    name = _LIB_NAMES.get(sys.platform, "libstable-diffusion.so")
    candidates = [lib_dir / name, *sorted(lib_dir.glob("*stable-diffusion*"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EngineLibraryError(f"no engine library in {lib_dir}; reinstall stable-diffusion-cpp-python==0.4.7")


def _forward_log(level: int, text: bytes) -> None:
    py_level = _LEVELS[min(max(level, 0), 3)]
    if log.isEnabledFor(py_level):
        log.log(py_level, "%s", text.decode("utf-8", "replace").rstrip())


def ensure_loaded() -> None:
    """Open and check the engine library (once); raises EngineLibraryError if it can't."""
    with _open_lock:
        if _engine.library_loaded():
            return
        path = find_library()
        try:
            _engine.load_library(str(path))
        except RuntimeError as exc:
            raise EngineLibraryError(str(exc)) from None
        _engine.set_log_handler(_forward_log)


_facts: dict[str, object] = {}
_facts_lock = threading.Lock()


def remember_facts(facts: dict[str, object]) -> None:
    """Keep what a worker reported about the engine (names, library info) for this kernel."""
    with _facts_lock:
        _facts.update(facts)


def facts() -> dict[str, object]:
    """The engine's enum names and library info as a worker reported them ({} before the first worker)."""
    with _facts_lock:
        return dict(_facts)


def _known_facts() -> dict[str, object]:
    if not facts():
        # No worker has started yet: ask a short-lived one, so this process never opens the engine.
        from .worker.process import WorkerProcess

        probe = WorkerProcess("the engine probe")
        try:
            remember_facts(probe.wait_ready())
        finally:
            probe.kill()
    return facts()


def enum_names() -> dict[str, list[str]]:
    """The engine's names for samplers, schedulers, predictions, weight types, rng kinds, ..."""
    if _engine.library_loaded():  # in a worker (or a test that opened the library itself)
        return _local_enum_names()
    known = facts()
    if known:
        return known["names"]  # type: ignore[return-value]
    # No worker has said hello yet (the first load_model validates its config while its worker starts):
    # the pinned release's names, which tests/test_packaging.py checks against the engine.
    from .engine_types import ENUMS, values

    return {key: list(values(key)) for key in ENUMS}


def info() -> dict[str, object]:
    """The engine library in use: path, version, commit, backend, physical cores, system info."""
    if _engine.library_loaded():
        return dict(_engine.library_info())
    return dict(cast("dict[str, object]", _known_facts()["info"]))  # as the worker reported it


def resolve_threads(value: int) -> int:
    """model_config["threads"] as the engine takes it: -1 means every physical core, as the library counts them."""
    return int(str(info()["physical_cores"])) if value == -1 else int(value)


@cache
def _local_enum_names() -> dict[str, list[str]]:
    ensure_loaded()
    return _engine.enum_names()
