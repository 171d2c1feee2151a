"""qvac_nb: local, private image generation inside Jupyter, over stable-diffusion.cpp.

The plain-function API has the QVAC SDK's shape: `load_model`, `diffusion`, `upscale`,
`unload_model`, `cancel`. Model constants (e.g. `SD_V2_1_1B_Q8_0`) name catalogue entries.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from .catalog import CATALOG, CONSTANTS
from .errors import (
    CallbackError,
    CancelledError,
    CorruptModelError,
    DownloadError,
    EngineCrashedError,
    EngineError,
    EngineLibraryError,
    InvalidParameterError,
    InvalidTypeError,
    ModelFileError,
    ModelNotLoadedError,
    QvacError,
    UnknownModelError,
    UnknownParameterError,
    UnsupportedOperationError,
)
from .generation import cancel, diffusion, upscale
from .grid import grid
from .history_folder import history
from .jobs import DiffusionJob, Job, Stats, UpscaleJob, set_display_hook
from .models import load_model, loaded_models, unload_model
from .png import read_parameters
from .progress_stream import ProgressTick

globals().update(CONSTANTS)


def _show_job(job: Job) -> Any:
    # The package (not its core modules) wires in the views, on first display so `import qvac_nb` stays light;
    # importing qvac_nb.widgets.display replaces this hook with its own.
    from .widgets.display import job_mimebundle

    return job_mimebundle(job)


set_display_hook(_show_job)

try:  # the one version source is pyproject.toml, read back from the installed metadata
    __version__ = metadata.version("qvac_nb")
except metadata.PackageNotFoundError:  # a source checkout on sys.path, not installed
    __version__ = "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    # Widgets import anywidget; keep `import qvac_nb` light for scripts.
    if name in ("Studio", "Gallery"):
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'qvac_nb' has no attribute {name!r}")


__all__ = [
    "load_model", "unload_model", "diffusion", "upscale", "cancel", "read_parameters", "loaded_models", "history",
    "grid",
    "DiffusionJob", "UpscaleJob", "ProgressTick", "Stats", "CATALOG",
    "QvacError", "InvalidParameterError", "InvalidTypeError", "UnknownParameterError", "ModelFileError",
    "CorruptModelError", "ModelNotLoadedError", "UnsupportedOperationError", "DownloadError", "EngineError",
    "CancelledError", "EngineLibraryError", "UnknownModelError", "EngineCrashedError", "CallbackError",
    "Studio", "Gallery", *CONSTANTS,
]
