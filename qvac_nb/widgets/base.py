"""What every qvac_nb widget shares: the image store, message dispatch, and errors shown in the widget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t

from .store import ImageStore

log = logging.getLogger("qvac_nb.widgets")
Handler = Callable[[dict[str, Any], list[bytes]], None]


class ImageWidget(anywidget.AnyWidget):
    """Base class: holds full-size PNGs kernel-side and answers the front-end's requests for them."""

    error = t.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store = ImageStore()
        self._handlers: dict[str, Handler] = {}
        self.on_msg(self._on_msg)

    def _on_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        """Entry point of every custom message from the front-end (anywidget's `model.send`)."""
        if not isinstance(content, dict):
            return
        if self._store.answer(content, self.send):
            return
        handler = self._handlers.get(str(content.get("type")))
        if handler is None:
            log.debug("ignoring widget message %r", content.get("type"))
            return
        try:
            handler(content, [bytes(b) for b in buffers or []])
        except Exception as exc:  # noqa: BLE001 - the widget is where the user looks
            self._show_error(exc)

    def _show_error(self, exc: BaseException | str) -> None:
        self.error = str(exc) or type(exc).__name__
