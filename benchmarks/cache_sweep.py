"""Tune cache presets: how many steps each cache setting skips, and what it does to the pixels.

    python benchmarks/cache_sweep.py [--model sd1|flux2] [--size 64] [--steps 20] [--thresholds 0.2,0.5,1,2]
                                     [--settings 0.2:0.3:0.9,0.3:0.2:0.95]   (threshold:start:end)

Skipped-step counts come from the engine's own summary line, so they do not depend on the
machine's load (unlike timings); run.py section 6 then measures the chosen presets' speed.
Each setting runs on qvac_nb's engine call in this process (no worker): the model is opened with
`qvac_nb.worker.opening.open_model` from the spec a worker would get, and every setting is an
_engine.Request with the cache fields set, passed to `context.generate`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from engine_log import LogLines, skipped_steps

REPO = Path(__file__).resolve().parent.parent
MODES = {"easycache": 1, "ucache": 2}


def _recorder(sink: list[float]) -> Any:
    def on_progress(_step: int, _total: int, secs: float, phase: str) -> None:
        if phase == "sample":
            sink.append(secs)

    return on_progress


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sd1")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--thresholds", default="", help="comma list; default: the current presets")
    ap.add_argument("--settings", default="", help="comma list of threshold:start:end triples to try")
    ap.add_argument("--start", type=float, default=None, help="start_percent for --thresholds (default 0.15)")
    ap.add_argument("--end", type=float, default=None, help="end_percent for --thresholds (default 0.95)")
    a = ap.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    from testmodels import registry

    from qvac_nb import _engine, engine, families, models
    from qvac_nb.cache_presets import PRESETS
    from qvac_nb.worker import opening

    lines = LogLines()
    log = logging.getLogger("qvac_nb.engine")
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    log.propagate = False

    tm = registry.get(a.model)
    engine.ensure_loaded()  # in this process: its log lines reach the qvac_nb.engine logger above
    config = {"threads": a.threads, **tm.model_config()}
    spec = models._prepare(str(tm.primary), "diffusion", config, None).worker_spec()  # what a worker would load
    model = opening.open_model(spec, None)
    sampler = model.context.default_sample_method()
    scheduler = model.context.default_scheduler(sampler)
    names = engine.enum_names()
    mode = "easycache" if families.get(model.family).dit else "ucache"
    settings: list[tuple[str, tuple[float, float, float] | None]] = [("none", None)]
    if a.settings:
        for triple in a.settings.split(","):
            t, start, end = (float(x) for x in triple.split(":"))
            settings.append((triple, (t, start, end)))
    elif a.thresholds:
        for t in a.thresholds.split(","):
            settings.append((f"t={t}", (float(t), a.start if a.start is not None else 0.15,
                                        a.end if a.end is not None else 0.95)))
    else:
        settings += list(PRESETS.items())

    base: np.ndarray | None = None
    for label, values in settings:
        req = _engine.Request()
        req.prompt, req.width, req.height, req.steps, req.seed = "a lighthouse on a cliff", a.size, a.size, a.steps, 42
        req.cfg_scale = 1.0 if model.family in ("flux", "flux2") else 7.0
        req.sample_method = names["sample_method"].index(sampler)
        req.scheduler = names["scheduler"].index(scheduler)
        req.eta = 0.0
        if values is not None:
            req.cache_mode = MODES[mode]
            req.cache_reuse_threshold, req.cache_start_percent, req.cache_end_percent = values
        job = _engine.Job()
        step_secs: list[float] = []
        job.on_progress = _recorder(step_secs)
        lines.lines.clear()
        t0 = time.perf_counter()
        pixels = model.context.generate(req, job)[0]
        total = time.perf_counter() - t0
        if base is None:
            base = pixels
        d = np.abs(pixels.astype(np.int16) - base.astype(np.int16))
        mse = float((d.astype(np.float64) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
        print(json.dumps({"model": a.model, "mode": mode, "setting": label, "values": values,
                          "skipped": skipped_steps(lines.lines), "sample_s": round(sum(step_secs), 3),
                          "total_s": round(total, 3), "mean_abs_diff": round(float(d.mean()), 3),
                          "psnr": round(psnr, 2)}), flush=True)
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
