"""Counting the bytes of widget messages on the kernel websocket, as the browser sees them.

JupyterLab 4 speaks the v1 kernel websocket protocol: each frame is one message, binary,
with a table of offsets in front of channel, header, parent header, metadata, content and
the binary buffers. Older servers send JSON text frames (and buffers in binary frames).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    t: float
    direction: str  # "in" (kernel -> browser) or "out"
    size: int
    msg_type: str = ""
    kind: str = ""  # what it is for the widgets: state:<keys>, custom:<type>, ...
    buffer_bytes: int = 0


def parse_v1(data: bytes) -> tuple[str, dict, dict, list[bytes]] | None:
    """(channel, header, content, buffers) of a v1 frame, or None if it is not one."""
    if len(data) < 16:
        return None
    count = int.from_bytes(data[:8], "little")
    if not 3 <= count <= 64 or 8 * (count + 1) > len(data):
        return None
    offsets = [int.from_bytes(data[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
    if offsets != sorted(offsets) or offsets[-1] != len(data):
        return None
    parts = [data[offsets[i]: offsets[i + 1]] for i in range(count - 1)]
    channel, header, _parent, _metadata, content, *buffers = parts
    try:
        return channel.decode(), json.loads(header), json.loads(content), buffers
    except (UnicodeDecodeError, ValueError):
        return None


def classify(header: dict, content: dict) -> str:
    msg_type = header.get("msg_type", "")
    if msg_type not in ("comm_msg", "comm_open"):
        return msg_type
    data = content.get("data", {})
    method = data.get("method", "")
    if method in ("update", "echo_update") or msg_type == "comm_open":
        keys = sorted(data.get("state", {}))
        return f"{method or 'open'}:{','.join(keys[:4])}{'…' if len(keys) > 4 else ''}"
    if method == "custom":
        return f"custom:{data.get('content', {}).get('type', '?')}"
    return method


@dataclass
class FrameLog:
    frames: list[Frame] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def attach(self, ws: Any) -> None:
        if "/api/kernels/" not in ws.url:
            return
        ws.on("framereceived", lambda payload: self._add("in", payload))
        ws.on("framesent", lambda payload: self._add("out", payload))

    def _add(self, direction: str, payload: str | bytes) -> None:
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        frame = Frame(time.monotonic(), direction, len(raw))
        parsed = parse_v1(raw) if isinstance(payload, bytes) else None
        if parsed is not None:
            _channel, header, content, buffers = parsed
            frame.msg_type, frame.kind = header.get("msg_type", ""), classify(header, content)
            frame.buffer_bytes = sum(len(b) for b in buffers)
        elif isinstance(payload, str):
            try:
                msg = json.loads(payload)
                frame.msg_type, frame.kind = msg["header"]["msg_type"], classify(msg["header"], msg["content"])
            except (ValueError, KeyError):
                pass
        self.frames.append(frame)

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def between(self, start: str, end: str) -> list[Frame]:
        lo, hi = self.marks[start], self.marks.get(end, float("inf"))
        return [f for f in self.frames if lo <= f.t <= hi]

    @staticmethod
    def summary(frames: list[Frame]) -> dict[str, dict[str, int]]:
        """kind -> {count, bytes, buffer_bytes}, widget messages only (comm traffic)."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "bytes": 0, "buffer_bytes": 0})
        for f in frames:
            if not f.msg_type.startswith("comm"):
                continue
            row = out[f"{f.direction} {f.kind}"]
            row["count"] += 1
            row["bytes"] += f.size
            row["buffer_bytes"] += f.buffer_bytes
        return dict(out)

    @staticmethod
    def format(title: str, frames: list[Frame]) -> str:
        rows = FrameLog.summary(frames)
        total = sum(r["bytes"] for r in rows.values())
        lines = [f"{title}: {sum(r['count'] for r in rows.values())} widget messages, {total} bytes"]
        for kind, r in sorted(rows.items(), key=lambda kv: -kv[1]["bytes"]):
            lines.append(f"    {kind:<48} {r['count']:>4} msgs {r['bytes']:>9} B (buffers {r['buffer_bytes']} B)")
        return "\n".join(lines)
