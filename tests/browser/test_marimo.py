"""A job's view in marimo, in a real `marimo edit` server and Debian's Chromium driven by Playwright.

marimo runs no Jupyter kernel, so a job used to fall back to its first image: the cell blocked until
the job ended, then showed a still picture. Now a job shows as marimo's own anywidget element
(qvac_nb/widgets/display.py) whose progress reaches the page from the view's follower thread:

- while its cell still runs: `display(job)` then `job.outputs.result()` (the tour's pattern);
- after its cell ended: a cell whose last expression is the job.

Each is asserted from what the page shows: progress labels "step k/N" with k < N, at least two of them,
seen while the cell is running (or, for the second, after it ended), then the finished view with
its full-size PNG. The Studio test checks its stage is inside marimo's height-capped output box.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from lab_server import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, browser_test, free_port, model_env, python_env

STEPS = 8  # enough for two or more progress labels below the total at the test model's speed
START_TIMEOUT_S = 60
CELL_TIMEOUT_S = 150  # one cell's job on a loaded 2-core machine
PAGE_MS = 60_000
SAMPLE_S = 0.1
NO_VIEW_GRACE_S = 10  # a cell done with no job view in it after this long: the view was not shown

HEADER = "import marimo\n\napp = marimo.App()\n"
FOOTER = '\n\nif __name__ == "__main__":\n    app.run()\n'
# The markers are printed joined, so the cell's source (also on the page) does not contain them.
LOAD_CELL = '''
@app.cell
def _():
    import json
    import os

    import marimo as mo
    import qvac_nb

    config = json.loads(os.environ["QVAC_NB_MARIMO_CONFIG"])
    model_id = qvac_nb.load_model(os.environ["QVAC_NB_MARIMO_MODEL"], model_config=config)
    print("MODEL", "LOADED", sep="_")
    return mo, model_id, qvac_nb
'''
BLOCKING_JOB_CELL = f'''
@app.cell
def _(model_id, qvac_nb):
    from IPython.display import display

    job = qvac_nb.diffusion(model_id=model_id, prompt="a small red house", width=64, height=64, steps={STEPS}, seed=7)
    display(job)
    job.outputs.result()
    print("JOB", "ENDED", sep="_")
    return
'''
LAST_EXPRESSION_CELL = f'''
@app.cell
def _(model_id, qvac_nb):
    last = qvac_nb.diffusion(model_id=model_id, prompt="a boat", width=64, height=64, steps={STEPS}, seed=8)
    last
    return
'''
STUDIO_CELL = f'''
@app.cell
def _(model_id, qvac_nb):
    studio = qvac_nb.Studio(model_id, prompt="a boat", width=64, height=64, steps={STEPS}, output_dir="outs")
    studio
    return
'''

# What cell `index` shows: marimo's run status, whether its output holds `marker`, and its job view
# (inside the shadow root marimo gives each anywidget).
CELL_STATE = """([index, marker]) => {
  const cell = document.querySelectorAll('.marimo-cell')[index];
  if (!cell) return null;
  const find = (root) => {
    const hit = root.querySelector('.qvac-jobview');
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      const inner = el.shadowRoot && find(el.shadowRoot);
      if (inner) return inner;
    }
    return null;
  };
  const view = find(cell);
  const label = view && view.querySelector('.qvac-progress-label');
  const img = view && view.querySelector('.qvac-job-img.qvac-full');
  const status = cell.querySelector('[data-testid=cell-status]');
  return {
    status: status ? status.dataset.status || '' : '',
    ended: marker ? cell.innerText.includes(marker) : false,
    phase: view ? view.dataset.phase || '' : null,
    label: label ? label.textContent : null,
    fullWidth: img && img.complete ? img.naturalWidth : 0,
  };
}"""
# Where the Studio's stage sits against the output box of its cell (marimo caps that box's height).
STAGE_IN_BOX = """(index) => {
  const cell = document.querySelectorAll('.marimo-cell')[index];
  const host = [...cell.querySelectorAll('marimo-anywidget')]
    .find((h) => h.shadowRoot && h.shadowRoot.querySelector('.qvac-stage'));
  if (!host) return null;
  const box = host.closest('.output-area').getBoundingClientRect();
  const stage = host.shadowRoot.querySelector('.qvac-stage').getBoundingClientRect();
  return {boxTop: box.top, boxBottom: box.bottom, stageTop: stage.top, stageBottom: stage.bottom};
}"""

# True once STAGE_IN_BOX of cell 1 has held for 5 polls in a row (wait_for_function polls once a frame).
SETTLED_IN_BOX = f"""() => {{
  const g = ({STAGE_IN_BOX})(1);
  const inside = Boolean(g && g.boxTop <= g.stageTop && g.stageBottom <= g.boxBottom);
  window.__qvacInBox = inside ? (window.__qvacInBox || 0) + 1 : 0;
  return window.__qvacInBox >= 5;
}}"""


def _step(label: str | None) -> int | None:
    match = re.search(rf"step (\d+)/{STEPS}\b", label or "")
    return int(match.group(1)) if match else None


def write_app(path: Path, cells: list[str]) -> None:
    """A marimo notebook (a .py app) of `cells`, each an `@app.cell` function's source."""
    path.write_text(HEADER + "".join(cells) + FOOTER)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"marimo exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"marimo did not start in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_marimo(notebook: Path, env: dict[str, str]) -> Iterator[str]:
    """`marimo edit` of `notebook` on a free port (no token, no browser): its base URL for the block."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: tools/test.sh installs Debian's chromium "
                           "(or set QVAC_NB_SKIP_BROWSER=1 to leave the browser tests out)")
    if importlib.util.find_spec("marimo") is None:
        pytest.fail("marimo is missing: it is in the test extra (pip install -e '.[test]')")
    home = notebook.parent / ".marimo-home"  # marimo's config, state and cache: none of the user's
    env = {**env, "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
           "XDG_CACHE_HOME": str(home / "cache"), "MARIMO_SKIP_UPDATE_CHECK": "1"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = notebook.parent / "marimo.log"
    cmd = [sys.executable, "-m", "marimo", "edit", str(notebook), "--headless", "--no-token", "--no-sandbox",
           "--skip-update-check", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=notebook.parent)
        try:
            _wait_ready(url, proc, log)
            yield url
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """End the server, then any kernel process of it still alive (by their ids)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()


@contextmanager
def open_app(pw: Any, url: str, cells: int) -> Iterator[Any]:
    """Chromium on the marimo notebook at `url` once its `cells` cells show; closed after the block."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator(".marimo-cell").nth(cells - 1).locator(".cm-content").wait_for(timeout=PAGE_MS)
        yield page
    finally:
        browser.close()


def run_cell(page: Any, index: int) -> None:
    """Run cell `index` as a person would: click into its editor, Ctrl+Enter."""
    page.locator(".marimo-cell").nth(index).locator(".cm-content").first.click()
    page.keyboard.press("Control+Enter")


def cell_state(page: Any, index: int, marker: str = "") -> dict[str, Any]:
    return page.evaluate(CELL_STATE, [index, marker]) or {}


def watch(page: Any, index: int, marker: str, until: Callable[[dict[str, Any]], bool],
          timeout_s: float = CELL_TIMEOUT_S) -> list[dict[str, Any]]:
    """Samples of cell `index`'s state every SAMPLE_S until `until(sample)`; fails after `timeout_s`."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sample = cell_state(page, index, marker)
        samples.append(sample)
        if until(sample):
            return samples
        time.sleep(SAMPLE_S)
    pytest.fail(f"cell {index} did not get there in {timeout_s} s; last states: {samples[-5:]}")


def _finished(sample: dict[str, Any]) -> bool:
    return sample.get("phase") == "done" and sample.get("fullWidth") == 64


def test_in_marimo_asks_marimo_only_once_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs take marimo's path only where marimo says a notebook runs; a Jupyter kernel never imports marimo."""
    from qvac_nb.widgets import live

    fake = types.SimpleNamespace(running_in_notebook=lambda: True)
    monkeypatch.setitem(sys.modules, "marimo", fake)
    assert live.in_marimo()
    fake.running_in_notebook = lambda: False  # imported by a script or a test: no notebook
    assert not live.in_marimo()

    def broken() -> bool:
        raise RuntimeError("an unknown marimo")

    fake.running_in_notebook = broken
    assert not live.in_marimo()
    monkeypatch.delitem(sys.modules, "marimo")
    assert not live.in_marimo()
    assert "marimo" not in sys.modules


@browser_test
def test_job_view_is_live_in_marimo(tmp_path: Path, sd1_model: Any) -> None:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebook = tmp_path / "jobs.py"
    write_app(notebook, [LOAD_CELL, BLOCKING_JOB_CELL, LAST_EXPRESSION_CELL])
    env = {**python_env(), **model_env(sd1_model, prefix="QVAC_NB_MARIMO")}

    with running_marimo(notebook, env) as url, sync_playwright() as pw, open_app(pw, url, 3) as page:
        run_cell(page, 0)
        watch(page, 0, "MODEL_LOADED", lambda s: s.get("ended") and s.get("status") == "idle")

        # 1. display(job) then a wait on it: the view moves while the cell still runs.
        started = time.monotonic()
        run_cell(page, 1)
        samples = watch(page, 1, "JOB_ENDED", _until_finished(page, lambda s: bool(s.get("ended")), "running",
                                                               "marimo-job-running.png"))
        assert samples[-1].get("phase") is not None, f"no job view in the cell, it showed: {samples[-1]}"
        while_running = {
            _step(s.get("label")) for s in samples if s.get("status") == "running" and not s.get("ended")
        } - {None, STEPS}
        assert len(while_running) >= 2, f"the view showed no progress while its cell ran: {samples[::10]}"
        print(f"blocking cell: steps {sorted(while_running)} shown while it ran; "
              f"done with its full PNG after {time.monotonic() - started:.1f} s")
        page.screenshot(path=str(SCREENSHOTS / "marimo-job-done.png"))

        # 2. The job as the cell's last expression: the cell ends at once, the view keeps moving.
        started = time.monotonic()
        run_cell(page, 2)
        samples = watch(page, 2, "", _until_finished(page, lambda s: s.get("status") == "idle", "idle",
                                                     "marimo-job-after-its-cell-ended.png"))
        assert samples[-1].get("phase") is not None, f"no job view in the cell, it showed: {samples[-1]}"
        after_end = {_step(s.get("label")) for s in samples if s.get("status") == "idle"} - {None, STEPS}
        assert len(after_end) >= 2, f"the view did not move after its cell ended: {samples[::10]}"
        print(f"last-expression cell: steps {sorted(after_end)} shown after it ended; "
              f"done after {time.monotonic() - started:.1f} s")


def _until_finished(page: Any, cell_done: Callable[[dict[str, Any]], bool], status: str,
                    shot: str) -> Callable[[dict[str, Any]], bool]:
    """watch()'s condition: the view finished once its cell is done, or the cell is done with no view at all.

    Saves the page as `shot` the first time the view shows a step below the total with the cell in `status`.
    """
    state: dict[str, float] = {}

    def until(sample: dict[str, Any]) -> bool:
        step = _step(sample.get("label"))
        if "shot" not in state and step is not None and 0 < step < STEPS and sample.get("status") == status:
            state["shot"] = 1
            page.screenshot(path=str(SCREENSHOTS / shot))
        if not cell_done(sample):
            return False
        if sample.get("phase") is None:  # the widget renders a moment after its output: give it time
            state.setdefault("no_view_since", time.monotonic())
            return time.monotonic() - state["no_view_since"] > NO_VIEW_GRACE_S
        return _finished(sample)

    return until


# marimo renders a widget in a shadow root under <marimo-anywidget>: js/src/studio.css scopes its marimo-only
# rule (the stage first in one column) with :host(marimo-anywidget).
@browser_test
def test_studio_stage_shows_without_scrolling_in_marimo(tmp_path: Path, sd1_model: Any) -> None:
    """marimo caps a cell's output at 610 px with a scrollbar: the Studio's stage must be inside, unscrolled."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    notebook = tmp_path / "studio.py"
    write_app(notebook, [LOAD_CELL, STUDIO_CELL])
    env = {**python_env(), **model_env(sd1_model, prefix="QVAC_NB_MARIMO")}

    with running_marimo(notebook, env) as url, sync_playwright() as pw, open_app(pw, url, 2) as page:
        run_cell(page, 0)
        watch(page, 0, "MODEL_LOADED", lambda s: s.get("ended") and s.get("status") == "idle")
        run_cell(page, 1)
        page.locator(".qvac-studio button[name=generate]").wait_for(timeout=PAGE_MS)
        # Rather than a fixed pause for the layout to settle (container queries): until the stage has been inside
        # its box for 5 animation frames in a row, bounded; if it never is, the assertion below fails with the
        # geometry.
        try:
            page.wait_for_function(SETTLED_IN_BOX, timeout=10_000)
        except PlaywrightTimeoutError:
            pass
        geometry = page.evaluate(STAGE_IN_BOX, 1)
        page.screenshot(path=str(SCREENSHOTS / "marimo-studio.png"))
        assert geometry is not None
        assert geometry["boxTop"] <= geometry["stageTop"] and geometry["stageBottom"] <= geometry["boxBottom"], geometry
