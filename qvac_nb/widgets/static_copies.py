"""Saved copies beside a live widget: what a reopened, exported or shared notebook shows of it.

JupyterLab and Notebook 7 do not save widget state by default, and nbconvert, nbviewer and GitHub
cannot run a widget: a notebook reopened without its kernel shows "Error displaying widget" where the
images were. So when a widget is displayed in a kernel it also leaves an ordinary `text/html` output
with a display id (thumbnails and their parameters, `static_html.snapshot`), and updates it as its
images arrive; the notebook file keeps the latest. While the widget runs, its front-end hides that
output in its own cell (js/src/static-copies.js), so no duplicate shows.

Updates may come from the thread following a job: JupyterLab applies them, Colab does not render
them (its outputs keep what was shown when the cell ran).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

log = logging.getLogger("qvac_nb.widgets")
CSS_CLASS = "qvac-static-output"


def new_key() -> str:
    """A name for one widget's copies: letters and digits only (it goes into a CSS class)."""
    return uuid.uuid4().hex[:16]


class StaticCopies:
    """The display outputs holding one widget's saved copy (one per time it was displayed)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._handles: list[Any] = []
        self._lock = threading.Lock()

    def add(self, html: str) -> None:
        """Display a new copy now (before the widget's own output, in the same cell)."""
        from IPython.display import HTML, display  # noqa: PLC0415 - only in a kernel

        handle = display(HTML(self._wrap(html)), display_id=True)
        if handle is not None:
            with self._lock:
                self._handles.append(handle)

    def update(self, html: str) -> None:
        """Put `html` into every copy (the notebook saves the latest)."""
        from IPython.display import HTML  # noqa: PLC0415

        with self._lock:
            handles = list(self._handles)
        for handle in handles:
            try:
                handle.update(HTML(self._wrap(html)))
            except Exception:  # noqa: BLE001 - a closed kernel channel must not break the widget
                log.debug("could not update a saved copy", exc_info=True)

    def _wrap(self, html: str) -> str:
        return f'<div class="{CSS_CLASS} qvac-for-{self.key}">{html}</div>'
