"""Whether widgets can be live here: a Jupyter kernel whose front-end may render them."""

from __future__ import annotations


def widgets_live() -> bool:
    """True inside a Jupyter kernel (a front-end may render widgets) with anywidget importable."""
    try:
        import anywidget  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
