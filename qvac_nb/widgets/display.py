"""How a job shows itself in a notebook: a live JobView widget, or its first image where widgets can't run."""

from __future__ import annotations

import weakref
from typing import Any

from ..jobs import Job, set_display_hook
from . import live

# One view per job: showing the same job twice reuses its widget (and its follower thread).
_views: weakref.WeakKeyDictionary[Job, Any] = weakref.WeakKeyDictionary()


def job_mimebundle(job: Job) -> Any:
    """The mimebundle of `job`: a JobView in a live kernel, else {"image/png", "text/plain"}.

    Usually a dict; in Colab a (data, metadata) pair, as anywidget returns there, since
    Colab's custom widget manager is named in the metadata.
    """
    if live.widgets_live():
        from .jobview import JobView

        view = _views.get(job)
        if view is None:
            view = _views[job] = JobView(job)
        data, metadata = view._repr_mimebundle_()
        return (data, metadata) if metadata else data
    return fallback_mimebundle(job)


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
