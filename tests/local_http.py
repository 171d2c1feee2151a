"""A local HTTP server for download tests: serves bytes, redirects, cuts connections, delays bodies."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_S = 60.0  # a held body goes out after this anyway: no handler thread waits forever


@dataclass
class Server:
    """What the test server serves and how it misbehaves; `requests` logs what it was asked."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)  # cut the body after N bytes, one entry per request
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    corrupt: bool = False  # serve bytes of the right length but the wrong content
    delay: float = 0.0  # seconds before sending a body
    hold: threading.Event | None = None  # if given, a body is sent only once it is set (bounded by HOLD_S)
    requests: list[dict[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> list[dict[str, str | None]]:
        return [request for request in self.requests if request["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append(
            {"path": self.path, "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")}
        )
        if self.path in state.redirects:
            self.send_response(302)
            self.send_header("Location", state.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        if state.corrupt:
            data = bytes(byte ^ 0xFF for byte in data)
        self._send(state, data)

    def _send(self, state: Server, data: bytes) -> None:
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not state.ignore_range:
            start, status = int(match.group(1)), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        time.sleep(state.delay)
        if state.hold is not None:
            state.hold.wait(HOLD_S)
        cut = state.cuts.pop(0) if state.cuts else None
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True  # after a cut the client sees the socket close early


@contextmanager
def serving() -> Iterator[Server]:
    """Serve on 127.0.0.1 (a free port) until the block ends; the thread and socket are closed."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(port=httpd.server_address[1])
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
