"""The engine's log lines as the benchmarks read them (cache summaries, mostly)."""

from __future__ import annotations

import logging
import re


class LogLines(logging.Handler):
    """Collects the messages of INFO and above into `lines`."""

    def __init__(self, lines: list[str] | None = None) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = [] if lines is None else lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def skipped_steps(lines: list[str]) -> int | None:
    """Skipped-step count from the engine's cache summary line (e.g. 'UCache skipped 5/20 steps')."""
    for line in lines:
        found = re.search(r"skipped\s+(\d+)", line, re.I)
        if found:
            return int(found.group(1))
        if "without skipping" in line:
            return 0
    return None
