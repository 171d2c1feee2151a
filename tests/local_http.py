"""A local HTTP server for download tests: plain files, and a stand-in for the Hugging Face Hub.

Plain files answer GET with Range support, cut connections and held bodies. Hub files answer
the requests huggingface_hub makes: a HEAD on `/<repo>/resolve/<revision>/<path>` with the
headers it reads (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size, Content-Length, and a
Location to a "CDN" host for large files), then a GET on that location. It never sends Xet
headers, so huggingface_hub never tries a Xet transfer.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

HOLD_S = 60.0  # a held body goes out after this anyway: no handler thread waits forever
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    """One file of a repository on the stand-in Hub: what its resolve URL answers."""

    commit: str
    etag: str
    size: int
    cdn_path: str | None  # where a HEAD redirects (another host name), or None to serve it in place
    data_path: str


@dataclass
class Server:
    """What the test server serves and how it misbehaves; `requests` logs what it was asked."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    hub: dict[str, HubFile] = field(default_factory=dict)  # resolve path -> file
    redirects: dict[str, str] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)  # cut the body after N bytes, one entry per request
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    corrupt: bool = False  # serve bytes of the right length but the wrong content
    delay: float = 0.0  # seconds before sending a body
    hold: threading.Event | None = None  # if given, a body is sent only once it is set (bounded by HOLD_S)
    hold_after: int = 0  # with `hold`: bytes sent before holding the rest
    token: str | None = None  # hub files need "Authorization: Bearer <token>" (else 401 GatedRepo)
    gated_status: int = 401
    requests: list[dict[str, str | None]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> list[dict[str, str | None]]:
        return [request for request in self.requests if request["path"] == path and request["method"] == "GET"]

    def add_hub_file(self, repo: str, path: str, data: bytes, *, revisions: tuple[str, ...] = ("main", COMMIT),
                     cdn: bool = True, commit: str = COMMIT) -> str:
        """Serve `data` as `repo`'s `path` at each of `revisions`; returns its data path (what is GET)."""
        sha = hashlib.sha256(data).hexdigest()
        data_path = f"/cdn/{sha}" if cdn else f"/{repo}/resolve/{commit}/{quote(path)}"
        self.files[data_path] = data
        for revision in revisions:
            resolve = f"/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"
            self.hub[resolve] = HubFile(commit, sha, len(data), data_path if cdn else None, data_path)
        return data_path


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def end_headers(self) -> None:
        # Every answer closes its connection (see _answer): say so, or a client may send its next request on
        # the socket being closed (on a busy machine that race lost a test: "Server disconnected").
        self.send_header("Connection", "close")
        super().end_headers()

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append({"method": "HEAD" if head else "GET", "path": self.path,
                               "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")})
        self.close_connection = True  # one request per connection: a cut is seen as the socket closing
        hub = state.hub.get(self.path)
        if hub is not None:
            self._hub(state, hub, head)
            return
        if self.path in state.redirects:
            self._headers(302, {"Location": state.redirects[self.path], "Content-Length": "0"})
            return
        data = state.files.get(self.path)
        if data is None:
            self._headers(404, {"Content-Length": "0"})
            return
        if state.corrupt:
            data = bytes(byte ^ 0xFF for byte in data)
        self._send(state, data, head, {})

    def _hub(self, state: Server, hub: HubFile, head: bool) -> None:
        if state.token is not None and self.headers.get("Authorization") != f"Bearer {state.token}":
            self._headers(state.gated_status, {"X-Error-Code": "GatedRepo", "Content-Length": "0",
                                               "X-Error-Message": "Access to this model is restricted."})
            return
        meta = {"X-Repo-Commit": hub.commit, "X-Linked-Etag": f'"{hub.etag}"', "X-Linked-Size": str(hub.size),
                "ETag": f'"{hub.etag}"'}
        if hub.cdn_path is not None:
            location = f"http://localhost:{state.port}{hub.cdn_path}"  # another host name: the token stays behind
            self._headers(302, {**meta, "Location": location, "Content-Length": "0"})
            return
        data = state.files[hub.data_path]
        self._send(state, bytes(byte ^ 0xFF for byte in data) if state.corrupt else data, head, meta)

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, state: Server, data: bytes, head: bool, extra: dict[str, str]) -> None:
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not state.ignore_range and not head:
            start, status = int(match.group(1)), 206
            if start >= len(data):
                self._headers(416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
                return
        body = data[start:]
        headers = {**extra, "Content-Length": str(len(body))}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._headers(status, headers)
        if head:
            return
        time.sleep(state.delay)
        cut = state.cuts.pop(0) if state.cuts else None
        body = body if cut is None else body[:cut]
        if state.hold is not None:
            self.wfile.write(body[: state.hold_after])
            self.wfile.flush()
            state.hold.wait(HOLD_S)
            body = body[state.hold_after :]
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass  # the client went away (a Cancel): nothing to finish


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
        if state.hold is not None:
            state.hold.set()  # release any handler still holding a body
        httpd.shutdown()
        httpd.server_close()
        thread.join()
