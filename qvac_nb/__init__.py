"""qvac_nb: local, private image generation inside Jupyter, over stable-diffusion.cpp.

The plain-function API has the QVAC SDK's shape: `load_model`, `diffusion`, `upscale`,
`unload_model`, `cancel`; `batch` makes many images on local workers or Ray actors; `convert`
quantizes a model file ahead of time. Model constants (e.g. `SD_V2_1_1B_Q8_0`) name catalogue entries.
"""

# Every public name is imported on first use (PEP 562): a model's worker process imports
# qvac_nb.worker, and must not pay for the kernel-side API (numpy, the hub, the widgets) to start.

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batching import BatchHandle, BatchRecord, BatchResult, BatchValidationError, batch
    from .catalog import CATALOG
    from .conversion import convert
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
        SaveError,
        UnknownModelError,
        UnknownParameterError,
        UnsupportedOperationError,
        UsageError,
    )
    from .generation import cancel, diffusion, upscale
    from .grids import grid
    from .history_folder import history
    from .jobs import DiffusionJob, Job, Stats, UpscaleJob, set_display_hook
    from .models import load_model, loaded_models, unload_model
    from .png import read_parameters
    from .png_image import PngImage
    from .progress_stream import ProgressTick
    from .video_files import Video
    from .video_generation import VideoJob, video
    from .widgets import Gallery, Studio


_ERRORS = (
    "QvacError", "InvalidParameterError", "InvalidTypeError", "UnknownParameterError", "ModelFileError",
    "CorruptModelError", "ModelNotLoadedError", "UnsupportedOperationError", "DownloadError", "EngineError",
    "CancelledError", "EngineLibraryError", "UnknownModelError", "EngineCrashedError", "CallbackError",
    "SaveError", "UsageError",
)
# public name -> the module that defines it
_HOMES: dict[str, str] = {
    "load_model": "models", "unload_model": "models", "loaded_models": "models",
    "diffusion": "generation", "upscale": "generation", "cancel": "generation",
    "read_parameters": "png", "PngImage": "png_image", "ImageStats": "png_image", "history": "history_folder",
    "grid": "grids",
    "convert": "conversion", "video": "video_generation", "VideoJob": "video_generation", "Video": "video_files",
    "batch": "batching", "BatchResult": "batching", "BatchRecord": "batching", "BatchHandle": "batching",
    "BatchValidationError": "batching",
    "DiffusionJob": "jobs", "UpscaleJob": "jobs", "Job": "jobs", "Stats": "jobs", "set_display_hook": "jobs",
    "ProgressTick": "progress_stream", "CATALOG": "catalog",
    "Studio": "widgets", "Gallery": "widgets",  # these import anywidget
    **dict.fromkeys(_ERRORS, "errors"),
}
# The functions whose QvacErrors about the caller's input come out of the call itself (short_errors.py).
_SHORT_TRACEBACKS = ("load_model", "unload_model", "diffusion", "upscale", "cancel", "read_parameters", "history",
                     "grid", "batch", "convert", "video")
_PUBLIC = (
    "load_model", "unload_model", "diffusion", "upscale", "cancel", "read_parameters", "loaded_models", "history",
    "grid", "batch", "convert", "video", "VideoJob", "Video", "BatchResult", "BatchRecord", "BatchHandle",
    "BatchValidationError",
    "DiffusionJob", "UpscaleJob", "ProgressTick", "Stats", "ImageStats", "CATALOG", *_ERRORS, "Studio", "Gallery",
    "PngImage",
)


def _constants() -> dict[str, str]:
    from .catalog import CONSTANTS

    return CONSTANTS


def _version() -> str:
    from importlib import metadata

    try:  # the one version source is pyproject.toml, read back from the installed metadata
        return metadata.version("qvac_nb")
    except metadata.PackageNotFoundError:  # a source checkout on sys.path, not installed
        return "0.0.0+unknown"


def _show_job(job: Any) -> Any:
    # The package (not its core modules) wires in the views, on a job's first display, so the core
    # never imports anywidget; importing qvac_nb.widgets.display replaces this hook with its own.
    from .widgets.display import job_mimebundle

    return job_mimebundle(job)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(import_module(f".{home}", __name__), name)
        if name in _SHORT_TRACEBACKS:
            value = import_module(".short_errors", __name__).public(value)
        jobs = import_module(".jobs", __name__)  # any public name can make jobs: show them as views
        if jobs._display_hook is None:
            jobs.set_display_hook(_show_job)
    elif name == "__version__":
        value = _version()
    elif name == "__all__":
        value = [*_PUBLIC, *_constants()]
    elif name.isupper() and name in _constants():  # only catalogue names read the catalogue (not `from . import x`)
        value = _constants()[name]
    else:
        raise AttributeError(f"module 'qvac_nb' has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, *_constants(), "__version__"})
