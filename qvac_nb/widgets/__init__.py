"""Jupyter widgets over the plain API: the Studio, a job's progress view, and a gallery."""

from __future__ import annotations

from ..jobs import set_wait_hook
from . import pump
from .gallery import Gallery
from .jobview import JobView
from .studio import Studio

# Once widgets exist, a cell blocked in job.outputs.result() keeps handling their messages.
set_wait_hook(pump.wait)

__all__ = ["Studio", "Gallery", "JobView"]
