"""Progress-tick latency from the engine's callback to the Studio's progress label in a real browser.

A JupyterLab server (the browser test's `tests/browser/lab_server.py`) runs a notebook that loads
the model, times every tick as it enters `ProgressStream.push` (wall clock, ms) and shows a Studio.
Debian's Chromium, driven by Playwright, clicks Generate and records, from a MutationObserver, when
each "step s/N" first appears in the label (`performance.timeOrigin + performance.now()`: the same
wall clock, same machine). Latency = first appearance - push. The Studio sends at most one status per
`min_interval` (0.1 s), so ticks closer together than that are merged by design and not counted.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))  # the browser test's JupyterLab server and Chromium settings
from lab_server import (  # noqa: E402
    CHROMIUM,
    open_notebook,
    python_env,
    run_cell,
    running_lab,
    write_notebook,
)

WAIT_MS = 600_000

STUDIO_CELL = """\
import json, os, time
import qvac_nb
from qvac_nb.progress_stream import ProgressStream

pushed = []
_push = ProgressStream.push

def _timed_push(self, tick):
    pushed.append([tick.phase, tick.step, tick.total_steps, time.time() * 1000])
    _push(self, tick)

ProgressStream.push = _timed_push
settings = json.loads(os.environ["QVAC_NB_BENCH_STUDIO"])
model_id = qvac_nb.load_model(settings["model"], model_config=settings["config"])
studio = qvac_nb.Studio(model_id, **settings["defaults"])
studio"""
SAVE_CELL = """\
with open(settings["ticks_out"] + ".part", "w") as f:
    json.dump(pushed, f)
os.replace(settings["ticks_out"] + ".part", settings["ticks_out"])"""

WATCH_LABEL = """() => {
  window.__labels = [];
  const label = document.querySelector('.qvac-studio .qvac-progress-label');
  new MutationObserver(() => window.__labels.push({t: performance.timeOrigin + performance.now(),
                                                   text: label.textContent}))
    .observe(label, {subtree: true, childList: true, characterData: true});
}"""


def available() -> str | None:
    """None if the browser measurement can run here, else why not."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install '.[test]')"
    return None


def measure(model: Any, *, size: int, steps: int, threads: int, tmp: Path) -> dict[str, Any]:
    """One Studio generation; latencies (ms) of the ticks the label showed."""
    from playwright.sync_api import sync_playwright

    tmp.mkdir(parents=True, exist_ok=True)
    ticks_out = tmp / "ticks.json"
    write_notebook(tmp / "latency.ipynb", [STUDIO_CELL, SAVE_CELL])
    env = python_env()
    env["QVAC_NB_BENCH_STUDIO"] = json.dumps({
        "model": str(model.primary), "config": {"threads": threads, **model.model_config()},
        "defaults": {"prompt": "a lighthouse", "width": size, "height": size, "steps": steps, "seed": 42},
        "ticks_out": str(ticks_out),
    })
    with (running_lab(tmp, env) as lab, sync_playwright() as pw,
          open_notebook(pw, lab, "latency.ipynb", WAIT_MS) as page):
        run_cell(page, 0)
        studio = page.locator(".qvac-studio")
        studio.locator("button[name=generate]:enabled").wait_for(timeout=WAIT_MS)
        page.evaluate(WATCH_LABEL)
        started = time.monotonic()
        studio.locator("button[name=generate]").click()
        studio.locator(".qvac-progress[data-phase=done]").wait_for(timeout=WAIT_MS)
        generate_s = time.monotonic() - started
        labels = page.evaluate("() => window.__labels")
        run_cell(page, 1)
        _wait_for(ticks_out)
    pushed = json.loads(ticks_out.read_text())
    return {**match(pushed, labels), "generate_s": generate_s}


def match(pushed: list[list[Any]], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Pair each sampling tick with the first label showing its step."""
    shown: dict[tuple[int, int], float] = {}
    for record in labels:
        found = re.search(r"Sampling .*step (\d+)/(\d+)", record["text"])
        if found:
            shown.setdefault((int(found.group(1)), int(found.group(2))), record["t"])
    latencies = [shown[(step, total)] - t for phase, step, total, t in pushed
                 if phase == "sample" and (step, total) in shown]
    sampled = sum(1 for phase, *_ in pushed if phase == "sample")
    return {"latency_ms": latencies, "ticks": sampled, "merged": sampled - len(latencies)}


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the notebook did not write {path}")
        time.sleep(0.2)
