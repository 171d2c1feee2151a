"""The messages between the kernel and an engine worker.

A worker first sends the key from its environment (KEY_ENV), as raw bytes. Every message after
that is a tuple whose first item is its kind, sent pickled over a
`multiprocessing.connection.Connection`. Result images follow their `RESULT` message as raw
byte messages (one `send_bytes` each), so a PNG crosses without being pickled or copied again.

Kernel -> worker:
    (LOAD, spec)                       spec: files, role, config, context (see opening.open_model)
    (DIFFUSION, job_id, work)          work: a DiffusionWork
    (UPSCALE, job_id, work)            work: an UpscaleWork
    (VIDEO, job_id, work)              work: a VideoWork
    (CANCEL, job_id)
    (PING,)
    (CLOSE,)
Worker -> kernel:
    (HELLO, facts)                     facts: enum names, library info, pid
    (LOAD_TICK, role, step, total, elapsed_ms)
    (LOADED, loaded)                   loaded: default sampler/scheduler, upscale factor, load_ms
    (TICK, job_id, step, total, elapsed_ms, phase, image_index, preview)
    (LOG, level, text)
    (CANCEL_ACK, job_id, phase)        the phase the job was in when the cancel arrived
    (RESULT, job_id, image_count, stats) followed by image_count byte messages
    (ERROR, job_id_or_None, error)     error: see `encode_error`
    (PONG,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the worker imports this module before anything heavy
    import numpy as np

    from ..request_types import DiffusionRequest
    from ..video_schema import VideoRequest

LOAD = "load"
DIFFUSION = "diffusion"
UPSCALE = "upscale"
VIDEO = "video"
CANCEL = "cancel"
PING = "ping"
CLOSE = "close"

HELLO = "hello"
LOAD_TICK = "load_tick"
LOADED = "loaded"
TICK = "tick"
LOG = "log"
CANCEL_ACK = "cancel_ack"
RESULT = "result"
ERROR = "error"
PONG = "pong"

KEY_ENV = "QVAC_NB_WORKER_KEY"  # the shared secret the worker proves it was started by us
PARENT_ENV = "QVAC_NB_WORKER_PARENT"  # the kernel's pid: the worker ends when that process does
FAULT_ENV = "QVAC_NB_WORKER_FAULT"  # test-only: "abort@diffusion", "segv@load", "hang@upscale", ...
FAULT_ONCE_ENV = "QVAC_NB_WORKER_FAULT_ONCE"  # test-only: a path; the fault fires in the worker that creates it


@dataclass(frozen=True)
class DiffusionWork:
    """A diffusion job as the worker runs it: the validated request, and the record computed once in the
    kernel (each PNG's text; the job keeps the same dict)."""

    request: DiffusionRequest
    record: dict[str, Any]
    init_as_reference: bool = False  # instruct-pix2pix: init_image is the reference the network reads


@dataclass(frozen=True)
class UpscaleWork:
    """An upscale job: the image's pixels, how many passes, and the record its PNG keeps (None: none)."""

    pixels: np.ndarray
    repeats: int
    record: dict[str, Any] | None


@dataclass(frozen=True)
class VideoWork:
    """A video job: the validated request and its record (the file's metadata)."""

    request: VideoRequest
    record: dict[str, Any]


Work = DiffusionWork | UpscaleWork | VideoWork


def encode_error(exc: BaseException) -> dict[str, Any]:
    """A worker-side exception as plain data: the kernel rebuilds the matching QvacError."""
    from .. import errors

    kind = type(exc).__name__
    if kind == "Cancelled":
        kind = "CancelledError"
    elif not isinstance(exc, errors.QvacError) and kind != "EngineLibraryError":
        kind = "EngineError" if kind == "EngineError" else f"other:{kind}"
    return {"kind": kind, "message": str(exc), "param": getattr(exc, "param", None)}


def decode_error(data: dict[str, Any]) -> Exception:
    """The kernel-side exception for an error a worker reported."""
    from .. import errors

    kind, message = data.get("kind", ""), str(data.get("message", ""))
    if kind.startswith("other:"):
        return errors.EngineError(f"{kind[6:]}: {message}")
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.QvacError)):
        cls = errors.EngineError
    try:
        return cls(message, param=data.get("param"))  # so the Studio marks the field a worker-side check named
    except TypeError:  # an error class with its own constructor (EngineCrashedError)
        return cls(message)
