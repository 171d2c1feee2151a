"""What every qvac_nb widget shares: the image store, message dispatch, and errors shown in the widget."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets as t

from . import live, static_html, subshell
from .static_copies import StaticCopies, new_key
from .store import ImageStore

log = logging.getLogger("qvac_nb.widgets")
ZIP_NAME = "qvac_nb-images.zip"
Handler = Callable[[dict[str, Any], list[bytes]], object]  # what a handler returns (a job) is ignored


class ImageWidget(anywidget.AnyWidget):
    """Base class: holds full-size PNGs kernel-side and answers the front-end's requests for them."""

    error = t.Unicode("").tag(sync=True)
    error_param = t.Unicode("", help="The parameter the error is about (QvacError.param), '' if none: the form "
                            "marks that field.").tag(sync=True)
    static_key = t.Unicode("", help="Marks this widget's saved copies (widgets/static_copies.py): the front-end "
                           "hides them in its cell while it runs.").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.static_key = new_key()
        self._static = StaticCopies(self.static_key)
        self._static_followed = False  # the copies follow the widget's images once it was first displayed
        self._store = ImageStore()
        self._handlers: dict[str, Handler] = {"download_zip": self._msg_download_zip, "poll": self._msg_poll}
        self.on_msg(self._on_msg)
        self.observe(self._forget_error_param, names="error")
        # Cancel must work while a cell blocks in job.outputs.result(): messages go to a subshell thread.
        self.served_on_subshell = subshell.route(self)

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
        param = getattr(exc, "param", None) if isinstance(exc, BaseException) else None
        text = str(exc) or type(exc).__name__
        with self.hold_sync():
            self._error_with_param = text
            self.error_param = str(param or "")
            self.error = text

    def _forget_error_param(self, change: dict[str, Any]) -> None:
        # The error is gone, or another one (set without a parameter) replaced it: no field stays marked.
        if change["new"] != getattr(self, "_error_with_param", None):
            self.error_param = ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if not bundle:
            return bundle
        data, metadata = bundle
        html = self._snapshot()
        if live.widgets_live() and "google.colab" not in sys.modules:
            # In a kernel: a saved copy of its own, kept up to date, which the live widget hides. Not in
            # Colab: each output is a frame of its own there (the widget could not hide the copy) and
            # updates from a job's thread are not rendered.
            if not self._static_followed:
                self._static_followed = True
                names = [n for n in (self._listing_trait(), "error") if n and self.has_trait(n)]
                self.observe(lambda _change: self._static.update(self._snapshot()), names=names)
            self._static.add(html)
            return data, metadata
        # Elsewhere (a script rendering the notebook): the HTML travels with the widget's own output.
        return {**data, "text/html": html}, metadata

    def _snapshot(self) -> str:
        """The HTML a viewer without the live widget shows: thumbnails with their parameters."""
        note = self._static_note()
        if self.error:
            note = f"{note}; error: {self.error}"
        return static_html.snapshot(self._static_title(), self._entries(), note)

    def _static_title(self) -> str:
        return f"qvac_nb {type(self).__name__}"

    def _static_note(self) -> str:
        return "a live widget: run the notebook in Jupyter to use it"

    def _msg_poll(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        """The front-end heard nothing for a while: send the live state again, from this message's handler.

        Colab drops widget updates sent from background threads (where jobs are followed) but renders
        those sent while a message is handled; the front-end polls while a job runs. The image list
        goes only when the front-end's count (`seen`) differs: it carries thumbnails.
        """
        keys = [key for key in self._poll_keys() if self.has_trait(key)]
        listing = self._listing_trait()
        if listing and content.get("seen") != len(getattr(self, listing)):
            keys.append(listing)
        self.send_state(keys)

    def _poll_keys(self) -> list[str]:
        return ["status", "busy", "error"]

    def _listing_trait(self) -> str:
        """The name of the trait listing the widget's images."""
        return ""

    def _entries(self) -> list[dict[str, Any]]:
        """The synced entries of the images this widget shows (each subclass names its trait)."""
        return []

    def _msg_download_zip(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        """"Download all": the shown images (the front-end's filtered ids, else all) as one zip file."""
        wanted = content.get("ids")
        entries = self._entries()
        if isinstance(wanted, list):
            keep = {str(i) for i in wanted}
            entries = [e for e in entries if e["id"] in keep]
        data, count = self._store.zip_of(entries)
        self.send({"type": "zip", "name": ZIP_NAME, "count": count}, buffers=[data])
