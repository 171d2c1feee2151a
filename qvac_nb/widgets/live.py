"""Whether widgets can be live here: a Jupyter kernel whose front-end may render them, or a marimo notebook."""

from __future__ import annotations

import sys


def widgets_live() -> bool:
    """True inside a Jupyter kernel (a front-end may render widgets) with anywidget importable."""
    try:
        import anywidget  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def in_marimo() -> bool:
    """True while a marimo notebook runs this code (`marimo edit` or `marimo run`), with anywidget importable.

    marimo opens every widget's comm itself and forwards its model updates to the page, from any
    thread, also while a cell still runs. Looked up in `sys.modules` only: marimo's kernel has
    imported it, and a Jupyter kernel need not pay for importing it.
    """
    marimo = sys.modules.get("marimo")
    if marimo is None:
        return False
    try:
        import anywidget  # noqa: F401

        return bool(marimo.running_in_notebook())
    except Exception:  # noqa: BLE001 - an unknown marimo: show the job as elsewhere
        return False
