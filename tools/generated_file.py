"""The write-or-check step every generator in tools/ ends with: `--check` reports drift, else the file is written."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def write_or_check(target: Path, text: str, argv: Sequence[str], command: str) -> int:
    """Exit status for `command [--check]`: 1 when `target` differs from `text` under --check, else 0."""
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is out of date: run {command}", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0
