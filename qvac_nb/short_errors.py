"""Short tracebacks for the public functions: a QvacError a user caused ends in their own call.

The message of a QvacError already says what was wrong and what is allowed; the frames of qvac_nb's
validation above it (schema, validation, guards) only bury that line. So `qvac_nb.diffusion`,
`qvac_nb.load_model`, ... re-raise it from their own frame, which IPython hides too
(`__tracebackhide__`). Engine failures keep their frames. QVAC_NB_DEBUG=1 keeps every frame.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import DownloadError, EngineError, QvacError

F = TypeVar("F", bound=Callable[..., Any])
# Errors about the user's input: the message is the whole story. Failures of the engine or a download
# keep the frames that locate them.
_KEEP_FRAMES = (EngineError, DownloadError)


def public(function: F) -> F:
    """`function` as qvac_nb exports it: a QvacError about the caller's input raises from this frame."""
    if not callable(function) or isinstance(function, type):
        return function

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841 - read by IPython's traceback printer
        try:
            return function(*args, **kwargs)
        except QvacError as exc:
            if isinstance(exc, _KEEP_FRAMES) or os.environ.get("QVAC_NB_DEBUG"):
                raise
            raise exc.with_traceback(None) from exc.__cause__

    return call  # type: ignore[return-value]
