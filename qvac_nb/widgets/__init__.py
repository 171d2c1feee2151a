"""Jupyter widgets over the plain API: the Studio, a job's progress view, and a gallery."""

from __future__ import annotations

from .gallery import Gallery
from .jobview import JobView
from .studio import Studio

__all__ = ["Studio", "Gallery", "JobView"]
