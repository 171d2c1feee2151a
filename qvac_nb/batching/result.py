"""What a batch returns: one record per image, as a list or (with pandas installed) a DataFrame."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK, SKIPPED, FAILED, CANCELLED = "ok", "skipped", "failed", "cancelled"


@dataclass
class BatchRecord:
    """One item of a batch and what became of it.

    `status` is "ok" (made now), "skipped" (found done in output_dir by its key), "failed" (`error`
    says why; a re-run tries it again) or "cancelled". `parameters` replay the image with diffusion().
    """

    index: int
    status: str
    prompt: str
    seed: int
    path: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0  # runs started (a lost worker's item runs again, at most twice more)
    worker: str | None = None  # which worker made it: "local-1", "ray-2@<node>"
    generation_ms: float | None = None  # the engine's sampling and decoding
    wall_ms: float | None = None  # from sending the item to a worker to its PNG being saved
    key: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path) if self.path is not None else None
        return out


@dataclass
class BatchResult:
    """The records of a batch, in item order, and a few totals.

    Iterate it or index it like a list; `to_pandas()` gives a DataFrame (one row per image).
    """

    records: list[BatchRecord]
    elapsed_s: float = 0.0
    workers: int = 0
    workers_replaced: int = 0  # workers (or Ray actors) lost during the batch and started again
    cancelled: bool = False

    def __iter__(self) -> Iterator[BatchRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> BatchRecord:
        return self.records[index]

    def _with(self, status: str) -> list[BatchRecord]:
        return [r for r in self.records if r.status == status]

    @property
    def ok(self) -> list[BatchRecord]:
        return self._with(OK)

    @property
    def skipped(self) -> list[BatchRecord]:
        return self._with(SKIPPED)

    @property
    def failed(self) -> list[BatchRecord]:
        return self._with(FAILED)

    @property
    def paths(self) -> list[Path]:
        """The PNG of every finished item (made now or found done), in item order."""
        return [r.path for r in self.records if r.path is not None and r.status in (OK, SKIPPED)]

    @property
    def items_per_s(self) -> float:
        """Images made per second of this run (skipped items not counted)."""
        return len(self.ok) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_pandas(self) -> Any:
        """The records as a pandas DataFrame (pandas is not a dependency of qvac_nb: pip install pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("BatchResult.to_pandas() needs pandas: pip install pandas "
                              "(or use result.records, a list of BatchRecord)") from None
        return pd.DataFrame([r.as_dict() for r in self.records])

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(self._with(s))} {s}" for s in (OK, SKIPPED, FAILED, CANCELLED) if self._with(s))
        return (f"<BatchResult {len(self.records)} items: {counts or 'none'}; {self.elapsed_s:.1f} s, "
                f"{self.items_per_s:.2f} images/s on {self.workers} worker(s)>")
