"""The HTML a widget's output also carries, for where widgets cannot render (nbviewer, GitHub, no kernel).

JupyterLab and VS Code show the live widget and ignore it; a static viewer shows thumbnails with
their parameters instead of "Error displaying widget". It is a snapshot of the moment the cell
ran (a JobView's images arrive later and are not in it), and is capped so a saved notebook stays small.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import Any

from .. import schema

MAX_IMAGES = 24
# What a saved copy lists under each image: the parameters flagged `summary` in the table.
_SHOWN_PARAMS = tuple(p.name for p in schema.DIFFUSION if p.summary)


def snapshot(title: str, entries: Iterable[dict[str, Any]], note: str = "") -> str:
    """A small self-contained HTML block: `title`, `note`, and up to MAX_IMAGES thumbnails with parameters."""
    items = list(entries)
    figures = "".join(_figure(entry) for entry in items[:MAX_IMAGES])
    more = len(items) - MAX_IMAGES
    tail = f"<p>…and {more} more.</p>" if more > 0 else ""
    body = f'<div style="display:flex;flex-wrap:wrap;gap:8px">{figures}</div>' if figures else ""
    return (f'<div class="qvac-static"><p><b>{html.escape(title)}</b>'
            f'{" — " + html.escape(note) if note else ""}</p>{body}{tail}</div>')


def _unused(entry: dict[str, Any]) -> set[str]:
    """Parameters that did not make this image: guidance or cfg_scale by the family, strength without an init image."""
    out = set() if entry.get("img2img") else {"strength"}
    family = entry.get("family")
    if family:
        from .. import families  # noqa: PLC0415

        row = families.get(str(family))
        if not row.uses_guidance:
            out.add("guidance")
        elif row.defaults.get("cfg_scale") == 1.0:
            out.add("cfg_scale")  # a guidance-distilled model runs one pass: cfg did nothing
    return out


def _figure(entry: dict[str, Any]) -> str:
    thumb = entry.get("thumb")
    src = f"data:image/jpeg;base64,{base64.b64encode(bytes(thumb)).decode()}" if thumb else ""
    params = entry.get("params") or {}
    shown = [key for key in _SHOWN_PARAMS if key not in _unused(entry)]
    rows = [("size", f"{entry.get('width')}×{entry.get('height')}"), ("seed", entry.get("seed"))]
    if entry.get("video"):  # the thumbnail is the video's first frame
        rows.insert(0, ("video", f"{entry.get('frames')} frames at {entry.get('fps')} fps, first frame shown"))
    rows += [(key, params[key]) for key in shown if params.get(key) not in (None, "")]
    caption = "<br>".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))}" for k, v in rows if v is not None)
    alt = html.escape(str(params.get("prompt") or "image"), quote=True)
    return (f'<figure style="margin:0;width:160px;font-size:11px"><img src="{src}" alt="{alt}" '
            f'style="max-width:160px;max-height:160px"><figcaption>{caption}</figcaption></figure>')
