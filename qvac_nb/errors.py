"""The exception hierarchy of qvac_nb.

Every error the package raises on purpose derives from `QvacError`, and also from the
built-in exception a Python user would expect (ValueError, TypeError, FileNotFoundError,
...), so both `except QvacError` and `except ValueError` work.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# Messages start with the parameter they are about: "steps: must be ...", "model_config.type: ...".
_PARAM_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): ")


class QvacError(Exception):
    """Base of every qvac_nb error.

    `param` names the offending parameter ("steps", "model_config.upscaler.tile_size") or is
    None; the validation helpers set it, and a message of the form "name: ..." supplies it
    otherwise, so a front-end can mark the field.
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        if param is None and args and isinstance(args[0], str):
            match = _PARAM_PREFIX.match(args[0])
            param = match.group(1) if match else None
        self.param = param


class InvalidParameterError(QvacError, ValueError):
    """A parameter has a bad value; the message names the parameter and what is allowed."""


class InvalidTypeError(QvacError, TypeError):
    """A parameter has the wrong type."""


class UnknownParameterError(QvacError, TypeError):
    """An unknown keyword or config key; the message suggests the closest known one."""


class ModelFileError(QvacError, FileNotFoundError):
    """A model file is missing."""


class CorruptModelError(QvacError, ValueError):
    """A model file is present but unusable."""


class ModelNotLoadedError(QvacError, KeyError):
    """An unknown or unloaded model id."""

    def __str__(self) -> str:
        # KeyError would repr() the message and show it in quotes.
        return str(self.args[0]) if self.args else ""


class UnsupportedOperationError(QvacError, ValueError):
    """The operation does not apply, e.g. upscale on a diffusion model."""


class DownloadError(QvacError, OSError):
    """A model file could not be downloaded, stored or verified."""


class EngineError(QvacError, RuntimeError):
    """The native engine failed."""


class CancelledError(QvacError):
    """The job was cancelled."""


class EngineLibraryError(QvacError, RuntimeError):
    """The engine library is missing or is not the release qvac_nb binds."""


class UnknownModelError(QvacError, KeyError):
    """A name that is not in the catalogue."""

    def __str__(self) -> str:
        # KeyError would repr() the message and show it in quotes.
        return str(self.args[0]) if self.args else ""


class SaveError(QvacError, OSError):
    """An image could not be saved into the history folder (e.g. a full disk); nothing of it was kept.

    The message names `output_dir` and the folder; `__cause__` is the OSError of the failed write.
    """


class UsageError(QvacError):
    """A bad command line found after parsing (e.g. an unreadable --model-config)."""


def suggest(value: str, allowed: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the allowed value closest to `value`, or "" when none is close.

    The comparison ignores case, so 'sd_v2_1_1b_q8_0' still finds 'SD_V2_1_1B_Q8_0'.
    """
    folded = {str(option).casefold(): str(option) for option in allowed}
    matches = difflib.get_close_matches(str(value).casefold(), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[matches[0]]!r}?)" if matches else ""


class EngineCrashedError(EngineError):
    """The engine's worker process died (a crash, an abort, the out-of-memory killer) or stopped responding.

    The kernel is unharmed; the model reloads on its next use. `exit_code` is the worker's exit
    status (negative: the signal that ended it) and `last_output` its last engine output lines,
    followed by Python's dump of the worker's threads when it crashed on a signal.
    """

    def __init__(self, message: str, *, exit_code: int | None = None, last_output: list[str] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.last_output = list(last_output or [])


class CallbackError(QvacError):
    """A progress listener raised; its job was cancelled. The listener's exception is `__cause__`."""
