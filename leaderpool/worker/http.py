"""The worker's HTTP endpoints (``--http-port``): ``/healthz``, ``/leader`` and ``/metrics``.

Served by the standard library's WSGI server on threads of its own, so a slow scraper or probe
never holds up the election loop, and the loop being stuck is exactly what ``/healthz`` can
still report. ``/metrics`` is prometheus_client's own WSGI app.

- ``/healthz``: 200 while the process is alive and its election loop turning (Redis reachable,
  or unreachable and being retried: both are healthy, a restart would not help); 503 when the
  loop has not turned for :data:`STALLED_AFTER_S` or the election stopped.
- ``/leader``: 200 with the pool, member and term on the leader, 503 on every other member: a
  readiness probe that routes a Service to the leader alone.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from leaderpool.util.threads import start_thread

__all__ = ["HttpEndpoints", "Probe", "bind"]

STALLED_AFTER_S = 10.0
"""The worker's loop checks its election every half second: ten seconds without a turn is a
process that is stuck (or starved), not one that is busy."""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Probe:
    """What the endpoints read, each a plain call safe from another thread."""

    health: Callable[[], tuple[bool, dict[str, Any]]]
    """(healthy, details) for ``/healthz``."""
    leader: Callable[[], tuple[bool, dict[str, Any]]]
    """(leading, details) for ``/leader``."""


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung client cannot keep the process alive
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
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
