"""Opening a file that may not be one: a FIFO blocks `open`, a device such as /dev/zero never ends.

Paths that come from users or from folders anyone can write into (history folders, PNGs to read
back) are opened only through `open_regular`, which refuses anything but a regular file without
blocking.
"""

from __future__ import annotations

import os
import stat
from typing import IO

# O_NONBLOCK: a FIFO swapped in between the stat and the open must not block the open.
OPEN_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def open_regular(path: str | os.PathLike[str]) -> tuple[IO[bytes], os.stat_result] | None:
    """`path` open for reading with its stat, or None when it is not a regular file (links followed).

    Raises OSError when it cannot be stat'ed or opened.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        return None  # not even opened: opening a device can have effects of its own
    fd = os.open(path, os.O_RDONLY | OPEN_FLAGS)
    try:
        info = os.fstat(fd)  # the file opened, which may have been swapped since the stat above
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise
