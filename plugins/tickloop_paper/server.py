"""The loopback HTTP server every paper exchange runs on, with its request log and faults.

A paper exchange is an *app*: ``app(request) -> Response`` for one parsed request. The server
runs it on ``127.0.0.1`` (port 0 picks a free one) in a background thread, logs every request
(method, path, query, JSON body, status) and applies the faults a test injected: before the app
sees the request, latency or an HTTP error status; after the app acted, ``stall`` (the answer is
held back for ``seconds``: the exchange did it, the client does not know yet); or an app-level
fault the app itself reads (``faults.take(name)``: partial fills, "could not immediately
match" ...). Faults are armed in-process (``server.faults.add``) or, for a server in another
process, with ``POST /paper/faults`` (a :class:`Fault` as JSON; ``DELETE`` clears them).

stdlib ``ThreadingHTTPServer`` on purpose: the official clients speak plain HTTP/1.1 to a
loopback ``http://`` URL (httpx negotiates HTTP/2 only over TLS), and a paper exchange needs no
more than that.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

#: Requests kept in the log (oldest dropped first).
LOG_LIMIT = 10_000


@attrs.frozen
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # first value of each parameter
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    raw: bytes  # the body's exact bytes (HMAC signatures cover them)


@attrs.frozen
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable; bytes or str are sent as they are
    content_type: str = "application/json"

    @classmethod
    def json(cls, body: Any, status: int = 200) -> Response:
        return cls(status, body)

    @classmethod
    def text(cls, body: str, status: int) -> Response:
        return cls(status, body, "text/plain")


@attrs.frozen
class Logged:
    at: float
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


@attrs.define
class Fault:
    """One injected fault: ``kind`` is ``"status"`` (answer ``status`` with ``body``),
    ``"latency"`` (sleep ``seconds`` first), ``"stall"`` (sleep ``seconds`` after the app acted,
    before answering) or an app-defined name; ``times`` how often it fires (None: until
    cleared); ``path`` limits it to one path."""

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        """A fault from ``POST /paper/faults``; ValueError names what is wrong."""
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            raise ValueError('expected {"kind": "latency" | "stall" | "status" | ..., "path"?, "times"?,'
                             ' "seconds"?, "status"?, "body"?, "params"?}')
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**body)

    kind: str
    path: str | None = None
    times: int | None = 1
    status: int = 500
    body: Any = None
    seconds: float = 0.0
    params: dict[str, Any] = attrs.field(factory=dict)


class Faults:
    """The faults armed on one server (thread-safe)."""

    def __init__(self) -> None:
        self._items: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, kind: str, path: str | None = None) -> Fault | None:
        """The first armed fault of ``kind`` matching ``path`` (used up once per call)."""
        with self._lock:
            for fault in self._items:
                if fault.kind == kind and (fault.path is None or path is None or fault.path == path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._items.remove(fault)
                    return fault
        return None


class PaperServer:
    """Runs ``app`` on a loopback port in a daemon thread."""

    def __init__(self, app: Callable[[Request], Response], *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "paper") -> None:
        self.app = app
        self.name = name
        self.faults = Faults()
        self.log: deque[Logged] = deque(maxlen=LOG_LIMIT)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle's algorithm the second waits for
            # the client's delayed ACK (~40 ms a request on loopback).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                server._handle(self)

            do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request log replaces stderr noise

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PaperServer:
        # A short poll interval so stop() returns at once (the default 0.5 s adds up in tests).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tickloop-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PaperServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self, path: str | None = None, method: str | None = None) -> list[Logged]:
        """The logged requests, oldest first, optionally only one path and method."""
        with self._lock:
            items = list(self.log)
        return [r for r in items if (path is None or r.path == path) and (method is None or r.method == method)]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = Request(method=handler.command, path=parts.path,
                          query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                          headers={k.lower(): v for k, v in handler.headers.items()}, body=body, raw=raw)
        if request.path == "/paper/faults":
            self._send(handler, self._arm(request))
            return
        latency = self.faults.take("latency", request.path)
        if latency is not None:
            time.sleep(latency.seconds)
        failure = self.faults.take("status", request.path)
        if failure is not None:
            response = Response(failure.status, failure.body if failure.body is not None else "injected fault",
                                "application/json" if isinstance(failure.body, (dict, list)) else "text/plain")
        else:
            try:
                response = self.app(request)
            except Exception as exc:  # a bug in the paper exchange: a 500 the client sees, logged
                response = Response.text(f"paper exchange error: {type(exc).__name__}: {exc}", 500)
        with self._lock:
            self.log.append(Logged(time.time(), request.method, request.path, request.query, body, response.status))
        stall = self.faults.take("stall", request.path)
        if stall is not None:
            time.sleep(stall.seconds)
        self._send(handler, response)

    def _arm(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response.json({"status": "ok"})
        if request.method != "POST":
            return Response.text("/paper/faults: POST a fault or DELETE them all", 405)
        try:
            fault = self.faults.add(Fault.from_json(request.body))
        except (TypeError, ValueError) as exc:
            return Response.json({"error": str(exc)}, 400)
        return Response.json({"status": "ok", "fault": attrs.asdict(fault)})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: Response) -> None:
        payload = response.body
        data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) \
            else json.dumps(payload).encode()
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
