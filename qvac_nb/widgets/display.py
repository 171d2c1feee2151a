"""How a job shows itself in a notebook: a live JobView widget, or its first image where widgets can't run."""

from __future__ import annotations

import weakref
from typing import Any

from ..jobs import Job, set_display_hook
from . import live

# One view per job: showing the same job twice reuses its widget (and its follower thread).
_views: weakref.WeakKeyDictionary[Job, Any] = weakref.WeakKeyDictionary()


def job_mimebundle(job: Job) -> Any:
    """The mimebundle of `job`: a JobView in a live kernel or marimo, else {"image/png", "text/plain"}.

    Usually a dict; in Colab a (data, metadata) pair, as anywidget returns there, since
    Colab's custom widget manager is named in the metadata.
    """
    if live.in_marimo():
        return marimo_mimebundle(job)
    if live.widgets_live():
        data, metadata = _view(job)._repr_mimebundle_()
        return (data, metadata) if metadata else data
    return fallback_mimebundle(job)


def marimo_mimebundle(job: Job) -> dict[str, Any]:
    """`job`'s JobView as marimo's own anywidget element (`mo.ui.anywidget`), returned at once.

    The cell does not wait for the job: marimo renders the element and forwards the view's model
    updates, which the view's follower thread makes, to the page as they come, whether the cell has
    ended (the job as its last expression) or still runs (`mo.output.append(job)` or `display(job)`,
    then a wait on `job.outputs`).
    """
    import marimo as mo  # noqa: PLC0415 - only under marimo, which has imported it already

    mimetype, html = mo.ui.anywidget(_view(job))._mime_()
    return {mimetype: html}


def _view(job: Job) -> Any:
    from .jobview import JobView

    view = _views.get(job)
    # marimo closes a widget's comm when the cell that opened it runs again or is deleted: a view
    # shown again after that needs a comm (so a view) of its own.
    if view is None or getattr(getattr(view, "comm", None), "_closed", False):
        view = _views[job] = JobView(job)
    return view


def fallback_mimebundle(job: Job) -> dict[str, Any]:
    """Blocks for the job's outputs; a failed job shows its error as text."""
    try:
        pngs = job.outputs.result()
    except Exception as exc:  # noqa: BLE001 - the repr must not raise
        return {"text/plain": f"{job!r}: {type(exc).__name__}: {exc}"}
    if job.kind == "video":  # one Video: it plays inline from its own HTML
        return {"text/plain": f"{job!r}: {pngs[0]!r}", "text/html": pngs[0]._repr_html_()}
    bundle: dict[str, Any] = {"text/plain": f"{job!r} ({len(pngs)} image{'s' if len(pngs) != 1 else ''})"}
    if pngs:
        bundle["image/png"] = pngs[0]
    return bundle


set_display_hook(job_mimebundle)
