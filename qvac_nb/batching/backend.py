"""What the scheduler (run.py) needs from a place where batch workers live: this machine, or Ray actors."""

from __future__ import annotations

from typing import Any, Protocol

from .items import Item


class WorkerLost(Exception):
    """The worker running an item died or was lost; the item may run again on a replacement."""


class Backend(Protocol):
    """Slots are workers with the model loaded; tasks are items running on them."""

    kind: str

    def open(self, count: int) -> list[Any]:
        """Start `count` workers and load the model in each; returns their slots when all are ready."""

    def submit(self, slot: Any, item: Item) -> Any:
        """Start `item` on `slot`'s worker; returns its task (raises a QvacError the item is recorded with)."""

    def wait(self, tasks: list[Any], timeout: float) -> list[Any]:
        """The tasks that finished, waiting up to `timeout` seconds for at least one."""

    def collect(self, task: Any) -> tuple[bytes, dict[str, Any], float]:
        """A finished task's (PNG, its parameters, generation ms); raises WorkerLost or the item's error."""

    def replace(self, slot: Any) -> Any:
        """A slot to use instead of a lost one."""

    def describe(self, slot: Any) -> str:
        """A short name for the worker, recorded with each item it made."""

    def cancel(self, task: Any) -> None:
        """Stop a running task (best effort: stop() ends its worker anyway)."""

    def stop(self) -> None:
        """End every worker (idempotent)."""


class NoWorkers:
    """The backend of a batch with nothing left to make: it starts no worker process and no Ray cluster."""

    kind = "none"

    def open(self, count: int) -> list[Any]:
        """No slots: there is nothing to run on them."""
        return []

    def submit(self, slot: Any, item: Item) -> Any:
        """Never called (no slots); refuses rather than dropping the item."""
        raise RuntimeError(f"item {item.index}: this batch has no workers")

    def wait(self, tasks: list[Any], timeout: float) -> list[Any]:
        """No task ever runs here."""
        return []

    def collect(self, task: Any) -> tuple[bytes, dict[str, Any], float]:
        """No task ever finishes here."""
        raise WorkerLost("this batch has no workers")

    def replace(self, slot: Any) -> Any:
        """The same (never-used) slot."""
        return slot

    def describe(self, slot: Any) -> str:
        """A name for records that never get one."""
        return "none"

    def cancel(self, task: Any) -> None:
        """Nothing runs, so nothing to stop."""

    def stop(self) -> None:
        """Nothing was started."""
