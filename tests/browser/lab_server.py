"""A throwaway JupyterLab server on 127.0.0.1 for the browser tests."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 90
LONG_MS = 180_000  # Playwright waits: generous for a loaded 2-core machine
# A test run never writes into the repository: screenshots go to a temporary folder unless
# QVAC_NB_SCREENSHOTS names one (QVAC_NB_SCREENSHOTS=docs/screenshots refreshes the docs on purpose).
SCREENSHOTS = Path(os.environ.get("QVAC_NB_SCREENSHOTS") or tempfile.mkdtemp(prefix="qvac_nb-screenshots-"))
# tools/test.sh installs Chromium, so a missing one fails (running_lab says so); only
# QVAC_NB_SKIP_BROWSER, set on purpose, skips the browser tests.
browser_test = pytest.mark.skipif(bool(os.environ.get("QVAC_NB_SKIP_BROWSER")), reason="QVAC_NB_SKIP_BROWSER is set")
# The first lines of a test notebook's first cell: the model that model_env() names, loaded.
LOAD_MODEL_CODE = """\
import json, os
import qvac_nb
model_id = qvac_nb.load_model(os.environ["QVAC_NB_BROWSER_MODEL"],
                              model_config=json.loads(os.environ["QVAC_NB_BROWSER_CONFIG"]))
"""
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright drives it with these switches
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
# True once the open notebook's kernel is idle (the page is ready to run cells).
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return Boolean(k && k.status === 'idle');
}"""


@dataclass
class Lab:
    port: int
    token: str
    root: Path
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(root: Path) -> Path:
    """Lab settings with widget state saved into notebooks (off by default in JupyterLab)."""
    settings = root / ".lab" / "settings"
    plugin = settings / "@jupyter-widgets" / "jupyterlab-manager" / "plugin.jupyterlab-settings"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(json.dumps({"saveState": True}))
    # No "get notified about Jupyter news?" toast over the screenshots (and no news fetch).
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    return settings


def _wait_ready(lab: Lab, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not start in {START_TIMEOUT_S} s:\n{lab.log.read_text()[-3000:]}")


@contextmanager
def running_lab(root: Path, env: dict[str, str]) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: tools/test.sh installs Debian's chromium "
                           "(or set QVAC_NB_SKIP_BROWSER=1 to leave the browser tests out)")
    lab = Lab(free_port(), secrets.token_hex(16), root, root / ".lab" / "server.log")
    private = root / ".lab"
    env = {
        **env,
        "JUPYTERLAB_SETTINGS_DIR": str(_settings(root)),
        "JUPYTERLAB_WORKSPACES_DIR": str(private / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(private / "config"),
        "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
        "IPYTHONDIR": str(private / "ipython"),
    }
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--IdentityProvider.token={lab.token}", f"--port={lab.port}", f"--ServerApp.root_dir={root}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
        "--LabApp.extension_manager=readonly",  # no extension catalogue look-ups
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",  # lets the test run commands such as docmanager:save
    ]
    with open(lab.log, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        try:
            _wait_ready(lab, proc)
            yield lab
        finally:
            proc.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def open_notebook(pw: Any, lab: Lab, name: str, timeout_ms: float) -> Iterator[Any]:
    """Chromium on `name` in `lab`, once its first cell shows and its kernel is idle; closed after the block."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(lab.url(f"lab/tree/{name}"))
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
        page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms)
        yield page
    finally:
        browser.close()


def model_env(model: Any, prefix: str = "QVAC_NB_BROWSER") -> dict[str, str]:
    """The kernel's variables naming a test model and its config (2 threads): {prefix}_MODEL, {prefix}_CONFIG."""
    config = {"threads": 2, **model.model_config()}
    return {f"{prefix}_MODEL": str(model.primary), f"{prefix}_CONFIG": json.dumps(config)}


def run_cell(page: Any, index: int) -> None:
    """Run the notebook's cell `index` as a person would: click into it, Shift+Enter."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def write_notebook(path: Path, cells: list[str], kernel: str = "python3") -> None:
    """A notebook of code cells for the kernel spec named `kernel`."""
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
                   "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": kernel},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


def python_env() -> dict[str, str]:
    """The test's environment for the kernel, so it imports the same qvac_nb."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
