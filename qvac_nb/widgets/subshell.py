"""Widget messages handled while a cell blocks: the widgets' comms are served on a kernel subshell.

A cell waiting in `job.outputs.result()` holds the kernel's main thread, and ipykernel reads
shell messages (widget messages included) on that thread, so a Cancel click would wait for the
cell to end. ipykernel 7 runs subshells, each on its own thread, and routes a comm's messages
to the subshell its `_reply_subshell_for(data, default)` names. Every qvac_nb widget's comm names
one subshell this module creates, so its messages are handled at once whatever the main thread
is doing. Where that is not available (ipykernel 6.x as in Colab, 7.0-7.3) the comms stay on the
main thread and the blocked wait itself handles them (pump.py), so Cancel still stops the job;
other kernels handle a click once the cell ends (interrupting the kernel cancels the job at once).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("qvac_nb.widgets")
CREATE_TIMEOUT_S = 5.0

_lock = threading.Lock()
_subshell: tuple[Any, str] | None = None  # (kernel, subshell id): one per kernel, kept for its life


def kernel() -> Any:
    """The running ipykernel, or None outside one."""
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


def supported(k: Any) -> bool:
    """True if `k` runs subshells and routes comm messages to them (ipykernel >= 7.4)."""
    manager = getattr(getattr(k, "shell_channel_thread", None), "manager", None)
    return manager is not None and hasattr(manager, "_create_subshell") and hasattr(k, "comm_manager")


def routes_widgets(k: Any) -> bool:
    """True if `k` serves the widgets' comm messages on a subshell (then no wait needs to pump them)."""
    if not supported(k):
        return False
    try:
        from ipykernel.comm import Comm
    except ImportError:
        return False
    return hasattr(Comm, "_reply_subshell_for")  # the per-comm routing route() relies on (ipykernel >= 7.4)


def _create(k: Any) -> str | None:
    """A new subshell, made on the shell-channel thread as ipykernel requires."""
    manager = k.shell_channel_thread.manager
    done = threading.Event()
    out: list[str] = []

    def create() -> None:
        try:
            out.append(manager._create_subshell())
        except Exception:  # noqa: BLE001 - no subshell: the widgets' messages stay on the main thread
            log.debug("could not create a subshell for widget messages", exc_info=True)
        finally:
            done.set()

    manager._shell_channel_io_loop.add_callback(create)
    done.wait(CREATE_TIMEOUT_S)
    return out[0] if out else None


def widget_subshell() -> str | None:
    """The id of the subshell serving the widgets' messages (created on first use), or None."""
    global _subshell
    k = kernel()
    if k is None or not supported(k):
        return None
    with _lock:
        if _subshell is None or _subshell[0] is not k:
            subshell_id = _create(k)
            if subshell_id is None:
                return None
            _subshell = (k, subshell_id)
        return _subshell[1]


def route(widget: Any) -> bool:
    """Serve `widget`'s front-end messages on the widgets' subshell; False where that is not possible."""
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    subshell_id = widget_subshell()
    if subshell_id is None:
        return False
    # ipykernel asks the comm which subshell handles its next message; this comm always answers ours.
    comm._reply_subshell_for = lambda _data, _default: subshell_id
    return True
