"""Batch throughput: qvac_nb.batch on 1 and 2 local workers and on 2 Ray actors, against a plain diffusion() loop.

    .venv/bin/python benchmarks/batch.py [--items 6] [--size 64]   (qvac_nb installed in .venv)
        [--steps 1] [--threads 2] [--no-ray] [--write]

This process plays the notebook's kernel. Every variant makes the same images (the same prompts and
seeds, the random-weight SD 1.x test model) and each one's pixels are checked against the plain loop's.
Figures per variant:

- images/s end to end: images / (from the call to the last PNG written), the model loads included
  (the plain loop's `load_model` too), which is what a user waits for;
- images/s steady: (images - 1) / (first to last image finished), loads excluded;
- engine s/image: median of the engine's own generation time (sampling and decoding) per image; on a
  shared machine it shows how much CPU each worker got;
- overhead per image: median of (wall - engine generation time) per image; for the batch variants wall
  is from handing the item to a worker to its PNG being written into output_dir (for the plain loop:
  from `diffusion()` to its outputs), so it is what the batch machinery adds per item (Ray: the actor
  call, moving the PNG, saving it) on top of what the engine does.

`--write` puts the table into benchmarks/RESULTS.md between `<!-- BEGIN batch -->` and `<!-- END batch -->`
(appended the first time). Ray is started here with `ray.init(num_cpus=2, include_dashboard=False)`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PROMPTS = ("a lighthouse at dusk", "a fox in a cafe", "a red boat", "a castle on a hill", "a forest path",
           "a city at night", "a bowl of fruit", "a snowy mountain")
MARKER = re.compile(r"<!-- BEGIN batch -->\n.*?<!-- END batch -->\n", re.S)


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def plain_loop(model: Any, config: dict[str, Any], items: list[dict[str, Any]], size: int,
               steps: int) -> dict[str, Any]:
    import qvac_nb

    start = time.perf_counter()
    model_id = qvac_nb.load_model(str(model.primary), model_config=config, reload=True)
    finished, overhead, engine, images = [], [], [], {}
    try:
        for item in items:
            sent = time.perf_counter()
            job = qvac_nb.diffusion(model_id=model_id, width=size, height=size, steps=steps, **item)
            png = job.outputs.result()[0]
            finished.append(time.perf_counter())
            engine.append(job.stats.result().generation_ms)
            overhead.append((finished[-1] - sent) * 1000 - engine[-1])
            images[item["seed"]] = _pixels(png)
    finally:
        qvac_nb.unload_model(model_id=model_id)
    return _figures("plain diffusion() loop, 1 model", start, finished, overhead, engine, images)


def run_batch(label: str, model: Any, config: dict[str, Any], items: list[dict[str, Any]], size: int, steps: int,
              **kwargs: Any) -> dict[str, Any]:
    import qvac_nb

    finished: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = qvac_nb.batch(items, model_src=str(model.primary), model_config=config, output_dir=out,
                               progress=False, on_record=lambda _r: finished.append(time.perf_counter()),
                               width=size, height=size, steps=steps, **kwargs)
        failed = [r.error for r in result.records if r.status != "ok"]
        if failed:
            raise RuntimeError(f"{label}: items failed: {failed}")
        overhead = [r.wall_ms - r.generation_ms for r in result.records]
        engine = [r.generation_ms for r in result.records]
        images = {r.seed: _pixels(r.path.read_bytes()) for r in result.records}
    figures = _figures(label, start, finished, overhead, engine, images)
    figures["replaced"] = result.workers_replaced
    return figures


def _figures(label: str, start: float, finished: list[float], overhead: list[float], engine: list[float],
             images: dict[int, np.ndarray]) -> dict[str, Any]:
    n = len(finished)
    steady = (n - 1) / (finished[-1] - finished[0]) if n > 1 and finished[-1] > finished[0] else float("nan")
    return {"label": label, "n": n, "total_s": finished[-1] - start, "end_to_end": n / (finished[-1] - start),
            "steady": steady, "overhead_ms": statistics.median(overhead), "engine_s": statistics.median(engine) / 1000,
            "images": images}


def table(rows: list[dict[str, Any]], reference: dict[str, Any]) -> str:
    lines = ["| variant | images | total s | images/s end to end | vs loop | images/s steady | vs loop | "
             "engine s/image (median) | overhead ms/image (median) | pixels = loop |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        same = all(np.array_equal(row["images"][seed], px) for seed, px in reference["images"].items())
        lines.append(
            f"| {row['label']} | {row['n']} | {row['total_s']:.1f} | {row['end_to_end']:.3f} | "
            f"{row['end_to_end'] / reference['end_to_end']:.2f} | {row['steady']:.3f} | "
            f"{row['steady'] / reference['steady']:.2f} | {row['engine_s']:.1f} | {row['overhead_ms']:.0f} | "
            f"{'yes' if same else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = parser.parse_args()

    from testmodels import registry

    model = registry.get("sd1")
    config = {"threads": args.threads, **model.model_config()}
    items = [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": 1000 + i} for i in range(args.items)]
    load_before = os.getloadavg()
    began = datetime.now(timezone.utc)

    ray = None
    if not args.no_ray:
        # Started first: Ray waits a fixed 30 s for its raylet, which a busy 2-core machine can miss after the
        # other variants; its idle processes then run during every variant (noted in the header).
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        for attempt in (1, 2, 3):
            try:
                ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
                break
            except Exception as exc:
                ray.shutdown()
                if attempt == 3 or "timed out during startup" not in str(exc):
                    raise
    try:
        reference = plain_loop(model, config, items, args.size, args.steps)
        rows = [reference]
        print(table(rows, reference), flush=True)
        for workers in (1, 2):
            rows.append(run_batch(f"batch, {workers} local worker(s)", model, config, items, args.size, args.steps,
                                  workers=workers))
            print(table(rows[-1:], reference).splitlines()[-1], flush=True)
        if ray is not None:
            rows.append(run_batch("batch, Ray, 2 actors (local cluster)", model, config, items, args.size,
                                  args.steps, cluster="ray", workers=2))
    finally:
        if ray is not None:
            ray.shutdown()
    load_after = os.getloadavg()

    text = table(rows, reference)
    cores = os.cpu_count()
    header = (
        f"Written by `python benchmarks/batch.py --items {args.items} --size {args.size} --steps {args.steps} "
        f"--threads {args.threads}` on {began:%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, "
        f"{cores} logical cores, Python {platform.python_version()}; load average "
        f"{[round(x, 2) for x in load_before]} -> {[round(x, 2) for x in load_after]}.\n"
        f"sd1 random-weight test model, {args.size}x{args.size}, {args.steps} step(s), engine threads "
        f"{args.threads} in every worker; each variant made the same {args.items} images (same prompts and seeds)"
        + ("; a local Ray cluster (2 CPUs) was up, idle, during the other variants." if ray is not None else ".")
    )
    print(header + "\n\n" + text)
    if args.write:
        results = HERE / "RESULTS.md"
        block = f"<!-- BEGIN batch -->\n## Batch (benchmarks/batch.py)\n\n{header}\n\n{text}\n<!-- END batch -->\n"
        current = results.read_text(encoding="utf-8")
        updated = MARKER.sub(lambda _m: block, current) if MARKER.search(current) else current.rstrip("\n") + \
            "\n\n" + block
        results.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
