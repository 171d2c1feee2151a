"""`qvac_nb.batch`: many images from one call, on worker processes here or on Ray actors.

items.py turns the caller's items into validated, keyed parameter dicts; run.py schedules them on a
backend (local.py: private model copies on this machine; ray_backend.py: Ray actors), retries items
of lost workers, skips items already in output_dir and returns the records (result.py).
(The package is not named `batch` so that `qvac_nb.batch` stays the function.)
"""

from __future__ import annotations

from .items import BatchValidationError
from .result import BatchRecord, BatchResult
from .run import BatchHandle, batch

__all__ = ["batch", "BatchHandle", "BatchRecord", "BatchResult", "BatchValidationError"]
