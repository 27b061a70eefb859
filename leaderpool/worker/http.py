"""The worker's HTTP endpoints (``--http-port``): ``/healthz``, ``/leader`` and ``/metrics``.

Served by the standard library's WSGI server on threads of its own, so a slow scraper or probe
never holds up the election loop, and the loop being stuck is exactly what ``/healthz`` can
still report. ``/metrics`` is prometheus_client's own WSGI app.

The threads are a fixed pool (:data:`WORKERS`), each connection has :data:`READ_TIMEOUT_S` to
send its request (and to take its answer), and at most :data:`MAX_CONNECTIONS` wait or are
served at once; one more, or one accepted too near the open-files limit, is closed at once. So
a stranger with half-sent requests costs a bounded number of descriptors and no threads
(issue 23: a thread per connection without a timeout held 1,002 threads for 1,000 of them).

- ``/healthz``: 200 while the process is alive and its election loop turning (Redis reachable,
  or unreachable and being retried: both are healthy, a restart would not help); 503 when the
  loop has not turned for :data:`STALLED_AFTER_S` or the election stopped.
- ``/leader``: 200 with the pool, member and term on the leader, 503 on every other member: a
  readiness probe that routes a Service to the leader alone.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from leaderpool.util import descriptors
from leaderpool.util.threads import start_thread

__all__ = ["HttpEndpoints", "Probe", "bind"]

STALLED_AFTER_S = 10.0
"""The worker's loop checks its election every half second: ten seconds without a turn is a
process that is stuck (or starved), not one that is busy."""

WORKERS = 4
"""Threads that serve requests: a probe, a scrape and a person with curl at once, and one spare."""
MAX_CONNECTIONS = 16
"""Connections waiting for a thread or being served, at most; one more is closed at once."""
READ_TIMEOUT_S = 2.0
"""How long a connection may take, from its accept, to send its request (a probe sends it at
once); also how long each read or write of it may wait."""
MIN_TIMEOUT_S = 0.1
"""What a connection that waited its turn in the queue gets at least (a request sent whole reads at once)."""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Probe:
    """What the endpoints read, each a plain call safe from another thread."""

    health: Callable[[], tuple[bool, dict[str, Any]]]
    """(healthy, details) for ``/healthz``."""
    leader: Callable[[], tuple[bool, dict[str, Any]]]
    """(leading, details) for ``/leader``."""


class _Server(WSGIServer):
    """A WSGI server whose connections are served by :data:`WORKERS` threads from a bounded queue."""

    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._waiting: queue.Queue[tuple[socket.socket, Any, float] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._open = 0
        self._workers: list[threading.Thread] = []
        super().__init__(*args, **kwargs)  # binds: a taken port raises here, before any thread starts
        self._workers = [start_thread(self._work, f"leaderpool-http-{i}") for i in range(WORKERS)]

    def process_request(self, request: Any, client_address: Any) -> None:
        """On the accepting thread: queue the connection, or close it when too many are open."""
        with self._lock:
            full = self._open >= MAX_CONNECTIONS or descriptors.near_limit(request.fileno())
            if not full:
                self._open += 1
        if full:
            self.shutdown_request(request)
        else:
            self._waiting.put((request, client_address, time.monotonic() + READ_TIMEOUT_S))

    def _work(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, client_address, deadline = item
            try:  # the time to read counts from the accept: a queue of stalled clients drains fast
                request.settimeout(max(deadline - time.monotonic(), MIN_TIMEOUT_S))
                self.finish_request(request, client_address)
            except Exception:  # a timeout or a reset: the client's problem, not news
                pass
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._open -= 1

    def server_close(self) -> None:
        super().server_close()
        for _ in self._workers:
            self._waiting.put(None)


class _QuietHandler(WSGIRequestHandler):
    timeout = None  # set by the server before the handler runs: what is left of READ_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # a probe every few seconds is not news
        pass


class HttpEndpoints:
    """A bound listener; :meth:`serve` starts answering, with what ``probe`` reads."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._probe: Probe | None = None
        self._metrics: Callable[..., Iterable[bytes]] | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def serve(self, probe: Probe, registry: CollectorRegistry) -> None:
        self._probe = probe
        self._metrics = make_wsgi_app(registry)
        self._server.set_app(self._app)
        self._thread = start_thread(self._server.serve_forever, "leaderpool-http")

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=2)
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics" and self._metrics is not None:
            return self._metrics(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, 405, {"error": "GET only"})
        if self._probe is not None and path in ("/healthz", "/leader"):
            ok, details = (self._probe.health if path == "/healthz" else self._probe.leader)()
            return _json(start_response, 200 if ok else 503, details)
        return _json(start_response, 404, {"error": "not found", "paths": ["/healthz", "/leader", "/metrics"]})


def _json(start_response: StartResponse, code: int, body: dict[str, Any]) -> list[bytes]:
    reasons = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    start_response(
        f"{code} {reasons[code]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")],
    )
    return [data]


def bind(host: str, port: int) -> HttpEndpoints:
    """Bind the listener now, so a taken port fails the start, before the worker joins its pool;
    raises OSError (the caller turns it into one line and exit 2)."""
    server_class: type[_Server] = _Server
    if ":" in host:  # an IPv6 literal
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    server = make_server(host, port, _unset_app, server_class=server_class, handler_class=_QuietHandler)
    return HttpEndpoints(server)


def _unset_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _json(start_response, 503, {"error": "starting"})
