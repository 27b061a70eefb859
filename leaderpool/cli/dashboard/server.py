"""The dashboard's HTTP server (aiohttp): the page, the JSON API, the event stream, the actions.

| route | answer |
|---|---|
| ``GET /`` | the page (``static/index.html``; its script and style under ``/static/``) |
| ``GET /api/info`` | ``{"allow_actions": bool, "prefix": ..., "redis": URL without password}`` |
| ``GET /api/status`` | ``status --json`` (``?all=1``: ``status --all --json``) |
| ``GET /api/events`` | Server-Sent Events (:mod:`.events`), a ``: keep-alive`` comment every 15 s |
| ``GET /api/pools/POOL/history`` | ``history POOL --json`` (``?count=N``, default 20) |
| ``POST /api/pools/POOL/resign`` | ``resign POOL``: ``{"ok": true, "message": ...}`` |
| ``POST /api/pools/POOL/members/MEMBER/evict`` | ``evict POOL MEMBER``, the same |

Actions answer 403 unless the server runs with ``--allow-actions``, and 403 without the header
``X-Leaderpool-Action: 1`` (a cross-site form cannot send it, and the preflight a cross-site
script needs is never granted: no route answers ``OPTIONS`` and no response carries CORS
headers) or with an ``Origin`` that is not the dashboard's own. Every request is first checked
by :mod:`.access`: a ``Host`` the server does not answer to is 421 (a DNS-rebinding page cannot
read or act), and without the token, where one is set (always, off loopback), 401. A command
that could not be done is 409 with ``{"ok": false, "error": line}``; an unreachable Redis is 503.

At most ``--max-streams`` (:data:`MAX_STREAMS`) event streams are open at once (one more is 503),
at most :data:`MAX_CONNECTIONS` connections (one more is closed at once); a connection that sends no
complete request within :data:`IDLE_TIMEOUT_S` is closed by aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.cli import status
from leaderpool.cli.dashboard.access import Access
from leaderpool.cli.dashboard.event_hub import Hub, Subscriber
from leaderpool.cli.evict import evict
from leaderpool.cli.history import history_rows
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import Blocking
from leaderpool.util.log import get_logger
from leaderpool.util.naming import validate_name
from leaderpool.util.timeouts import cancel_and_wait, within

STATIC = Path(__file__).with_name("static")
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
ACTION_HEADER = "X-Leaderpool-Action"
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies and browsers from timing an idle stream out."""
WRITE_TIMEOUT_S = 10.0
"""A browser that takes longer than this to accept one event is dropped."""
HISTORY_MAX = 1000
"""The history stream is capped near this many entries."""
MAX_STREAMS = 64
"""Event streams open at once, at most, by default (``--max-streams``); one more is answered 503."""
MAX_CONNECTIONS = 256
"""Connections open at once besides the event streams, at most; one more is closed as soon as it is made."""
IDLE_TIMEOUT_S = 15.0
"""A connection without a complete request for this long is closed (aiohttp's keep-alive timeout,
which also runs from the moment a connection is made)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",  # the buttons must not be clickjacked inside another site's frame
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

log = get_logger("leaderpool.dashboard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """What the handlers share: the asyncio client, the hub, the blocking client for ``resign``."""

    def __init__(
        self,
        client: Any,
        blocking: Any,
        prefix: str,
        *,
        host: str,
        allow_actions: bool,
        redis_shown: str,
        hub: Hub | None = None,
        token: str | None = None,
        allowed_hosts: tuple[str, ...] = (),
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.client = client
        self.blocking = blocking
        self.prefix = prefix
        self.allow_actions = allow_actions
        self.redis_shown = redis_shown
        self.access = Access(host, token, allowed_hosts)
        self.max_streams = max_streams
        self.hub = hub if hub is not None else Hub(client, prefix)
        self._hub_task: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/info", self.info)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/pools/{pool}/history", self.history)
        app.router.add_post("/api/pools/{pool}/resign", self.resign)
        app.router.add_post("/api/pools/{pool}/members/{member}/evict", self.evict)
        app.on_startup.append(self._start_hub)
        app.on_shutdown.append(self._stop_streams)
        app.on_cleanup.append(self._stop_hub)
        return app

    # ---- lifecycle ----

    async def _start_hub(self, _app: web.Application) -> None:
        self._hub_task = asyncio.get_running_loop().create_task(self.hub.run(), name="leaderpool-dashboard-hub")
        self._hub_task.add_done_callback(_log_hub_end)

    async def _stop_streams(self, _app: web.Application) -> None:
        self.hub.close()  # open event streams end now, so shutting down does not wait for them

    async def _stop_hub(self, _app: web.Application) -> None:
        self.hub.close()
        task, self._hub_task = self._hub_task, None
        if task is not None:
            await cancel_and_wait(task)

    # ---- every request ----

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = self.access.refusal(request)
        if refused is not None:
            response = refused
        else:
            try:
                response = await handler(request)
            except BadInput as exc:
                response = _error(400, str(exc))
            except web.HTTPException as exc:  # aiohttp's own: no such route, method not allowed
                exc.headers.update(SECURITY_HEADERS)
                raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    # ---- the page ----

    async def page(self, _request: web.Request) -> web.StreamResponse:
        return _file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in FILES or name == "index.html":
            return _error(404, f"no such file: {name}")
        return _file(name)

    # ---- reading ----

    async def info(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"allow_actions": self.allow_actions, "prefix": self.prefix, "redis": self.redis_shown}
        )

    async def status(self, request: web.Request) -> web.StreamResponse:
        show_all = request.query.get("all", "") in ("1", "true", "yes")
        try:
            statuses = await status.read_status(self.client, [], self.prefix, show_all=show_all)
        except RETRYABLE as exc:
            return _error(503, f"cannot read Redis: {exc or type(exc).__name__}")
        return _json_as_cli(status.status_json(statuses, statuses.foreign))

    async def history(self, request: web.Request) -> web.StreamResponse:
        pool = _name("pool", request.match_info["pool"])
        raw = request.query.get("count", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= HISTORY_MAX:
            return _error(400, f"count must be a whole number from 1 to {HISTORY_MAX}, got {raw!r}")
        try:
            entries = await PoolStore(self.client, Keyspace(pool, self.prefix)).history(int(raw))
        except RETRYABLE as exc:
            return _error(503, f"cannot read Redis: {exc or type(exc).__name__}")
        return _json_as_cli({"pool": pool, "transitions": history_rows(entries)})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The event stream; the hub drops it (aborting the connection) if it falls behind."""
        if self.hub.subscribers >= self.max_streams:
            return _error(503, f"too many event streams open (at most {self.max_streams})")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"})
        await response.prepare(request)
        transport = request.transport
        sub = self.hub.subscribe(on_drop=lambda: transport.abort() if transport is not None else None)
        try:
            await _pump(sub, response)
        except asyncio.TimeoutError:  # it stopped reading: one write waited WRITE_TIMEOUT_S
            self.hub.dropped += 1
            log.warning("dashboard_client_dropped", reason="write_timeout", timeout_s=WRITE_TIMEOUT_S)
        except ConnectionError:  # the browser went away (or the hub aborted it, which it logged)
            if not sub.dropped:
                log.info("dashboard_client_gone")
        finally:
            self.hub.unsubscribe(sub)
        return response

    # ---- actions ----

    def _refuse_action(self, request: web.Request) -> web.StreamResponse | None:
        if not self.allow_actions:
            return _error(403, "actions are off: start the dashboard with --allow-actions")
        if request.headers.get(ACTION_HEADER) != "1":
            return _error(403, f"an action needs the header {ACTION_HEADER}: 1")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _error(403, f"cross-site action refused (Origin {origin})")
        return None

    async def resign(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_action(request)
        if refused is not None:
            return refused
        from leaderpool.cli.resign import resign

        pool = _name("pool", request.match_info["pool"])
        store = PoolStore(Blocking(self.blocking), Keyspace(pool, self.prefix))
        # resign waits (reading the pool) for the hand-over and the new leader's first renewal:
        # on its blocking client, in a thread, so the server goes on serving meanwhile
        return await _act(lambda: asyncio.to_thread(resign, store, None), pool=pool, action="resign")

    async def evict(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_action(request)
        if refused is not None:
            return refused
        pool = _name("pool", request.match_info["pool"])
        member = _name("member id", request.match_info["member"])
        store = PoolStore(self.client, Keyspace(pool, self.prefix))
        return await _act(lambda: evict(store, member), pool=pool, action="evict", member=member)


async def _pump(sub: Subscriber, response: web.StreamResponse) -> None:
    """Write ``sub``'s events to the browser until it is dropped; a keep-alive when idle."""
    while True:
        try:
            event = await within(sub.next(), KEEPALIVE_S)
        except asyncio.TimeoutError:
            event = b": keep-alive\n\n"
        if event is None:
            return
        await within(response.write(event), WRITE_TIMEOUT_S)


async def _act(do: Callable[[], Awaitable[str]], **fields: str) -> web.StreamResponse:
    try:
        message = await do()
    except Failure as exc:
        log.info("dashboard_action_failed", error=str(exc), **fields)
        return web.json_response({"ok": False, "error": str(exc)}, status=409)
    except RETRYABLE as exc:
        return _error(503, f"cannot reach Redis: {exc or type(exc).__name__}")
    log.info("dashboard_action_done", result=message.splitlines()[0], **fields)
    return web.json_response({"ok": True, "message": message})


def cap_connections(runner: web.AppRunner, limit: int) -> None:
    """Close any connection made while ``limit`` are open (after ``runner.setup()``)."""
    server = runner.server
    assert server is not None
    made = server.connection_made

    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        made(handler, transport)
        if len(server.connections) > limit:
            transport.abort()

    server.connection_made = connection_made  # type: ignore[method-assign]


def _log_hub_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("dashboard_hub_failed", error=repr(task.exception()))


def _file(name: str) -> web.StreamResponse:
    body = (STATIC / name).read_bytes()
    return web.Response(body=body, content_type=FILES[name], charset="utf-8")


def _error(code: int, message: str) -> web.StreamResponse:
    return web.json_response({"ok": False, "error": message}, status=code)


class BadInput(Exception):
    """A bad pool or member name in the path: 400 with the line."""


def _name(kind: str, raw: str) -> str:
    try:
        return validate_name(kind, raw)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _json_as_cli(doc: Any) -> web.Response:
    """``doc`` as the CLI's ``--json`` prints it, byte for byte (aiohttp's json_response puts
    spaces after separators and no newline)."""
    return web.Response(text=status.json_text(doc), content_type="application/json")
