"""Driving the widgets as the front-end does: messages in through `_on_msg`, `send` and statuses captured.

Messages go through the same handler anywidget's `msg:custom` path calls
(`widget._on_msg(widget, content, buffers)`), and `widget.send` is replaced to capture
what the kernel sends back (previews and full-size images as binary buffers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qvac_nb.widgets import Studio

JOB_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Studio saves into qvac_nb_outputs/ of the working folder: keep that out of the repository."""
    monkeypatch.chdir(tmp_path)


class Recorder:
    """Captures `send` and every status the widget publishes."""

    def __init__(self, widget: Any) -> None:
        self.sent: list[tuple[dict, list[bytes]]] = []
        self.statuses: list[dict] = []
        widget.send = self._send
        if widget.has_trait("status"):
            widget.observe(lambda change: self.statuses.append(dict(change["new"])), "status")

    def _send(self, content: dict, buffers: list[bytes] | None = None) -> None:
        self.sent.append((content, [bytes(b) for b in buffers or []]))

    def of_type(self, kind: str) -> list[tuple[dict, list[bytes]]]:
        return [(c, b) for c, b in self.sent if c.get("type") == kind]

    def phases(self) -> list[str]:
        """Phases in order, consecutive repeats folded."""
        out: list[str] = []
        for status in self.statuses:
            if not out or out[-1] != status["phase"]:
                out.append(status["phase"])
        return out


def msg(widget: Any, content: dict, buffers: list[bytes] | None = None) -> None:
    """What the front-end's `model.send(content, callbacks, buffers)` ends up calling."""
    widget._on_msg(widget, content, buffers or [])


def wait_for(condition: Callable[[], bool], timeout: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the widget did not reach the expected state")
        time.sleep(0.02)


def wait_idle(studio: Studio) -> None:
    time.sleep(0.05)
    wait_for(lambda: not studio.busy and studio.status.get("phase") in ("done", "cancelled", "error", "idle"))
