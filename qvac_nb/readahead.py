"""Start reading a model's files from disk while its worker process starts.

A first load (after a download or a reboot) is bound by the disk: the engine reads every byte of
every file. The worker needs ~0.1 s to start before its engine can ask for the first one; hinting
the head of each file to the OS (POSIX_FADV_WILLNEED) as soon as the kernel knows the files lets
the disk work during that time instead. Only the head: once the engine reads, the OS's own
read-ahead keeps ahead of it. Linux reads at most one read-ahead window (often 128 KiB) per hint,
so the head is hinted in window-sized pieces. Files already in the page cache make this a no-op.
Where the hint does not exist (Windows, macOS) nothing happens.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("qvac_nb.readahead")
HEAD_BYTES = 256 * 2**20  # what a disk reads in well over the worker's start
PIECE_BYTES = 128 * 2**10  # Linux's smallest common read-ahead window: one hint reads no more


def _advise(paths: list[Path]) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # the load itself reports a missing or unreadable file
        try:
            head = min(os.fstat(fd).st_size, HEAD_BYTES)
            for offset in range(0, head, PIECE_BYTES):
                os.posix_fadvise(fd, offset, min(PIECE_BYTES, head - offset), os.POSIX_FADV_WILLNEED)
        except OSError:
            log.debug("no read-ahead for %s", path, exc_info=True)
        finally:
            os.close(fd)


def start(paths: Iterable[Path]) -> threading.Thread | None:
    """Hint `paths` to the OS on a background thread (queueing the reads of a large file can block)."""
    if not hasattr(os, "posix_fadvise"):
        return None
    thread = threading.Thread(target=_advise, args=(list(paths),), name="qvac_nb-readahead", daemon=True)
    thread.start()
    return thread
