"""Memory after re-running a notebook's load cell three times: RSS of the kernel and of the model workers.

Usage: python tools/rss_rerun.py MODEL_FILE [threads]. The "cell" is `load_model(MODEL_FILE)`
followed by a Studio, as a notebook's first cell would be; it runs three more times as a user
re-running the cell would. Prints RSS before and after: a re-run must not add a worker (load_model
returns the model already loaded) nor keep old Studios' images in memory.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time

import psutil

import qvac_nb
from qvac_nb.runner import runner_for


def rss_mib() -> tuple[float, float, int]:
    """(kernel RSS, workers' RSS, number of workers) in MiB."""
    me = psutil.Process()
    workers = [p for p in me.children(recursive=True) if "qvac_nb.worker" in " ".join(p.cmdline())]
    return me.memory_info().rss / 2**20, sum(p.memory_info().rss for p in workers) / 2**20, len(workers)


def cell(path: str, threads: int, folder: str) -> qvac_nb.Studio:
    model_id = qvac_nb.load_model(path, model_config={"threads": threads})
    studio = qvac_nb.Studio(model_id, prompt="a boat", width=64, height=64, steps=2, output_dir=folder)
    studio.generate(seed=1).outputs.result(600)
    return studio


def main() -> None:
    path, threads = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2
    folder = tempfile.mkdtemp(prefix="qvac_nb-rss-")
    studio = cell(path, threads, folder)  # the first run
    while studio.busy:
        time.sleep(0.05)
    gc.collect()
    before = rss_mib()
    ids = {studio.current_model}
    for _ in range(3):
        studio = cell(path, threads, folder)
        while studio.busy:
            time.sleep(0.05)
        ids.add(studio.current_model)
    gc.collect()
    after = rss_mib()
    print(f"model ids over 4 runs: {sorted(ids)}; runner alive: {runner_for(studio.current_model) is not None}")
    print(f"before re-runs: kernel {before[0]:.0f} MiB, {before[2]} worker(s) {before[1]:.0f} MiB")
    print(f"after 3 re-runs: kernel {after[0]:.0f} MiB, {after[2]} worker(s) {after[1]:.0f} MiB")
    print(f"images saved: {len(qvac_nb.history(folder))}")


if __name__ == "__main__":
    main()
