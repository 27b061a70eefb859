"""Who may use the dashboard: the ``Host`` check and the token (issue 23).

- **Host**, always: a request must name the server by a loopback name, an IP address, the
  address it was bound to, this machine's host name, or a name given with ``--allow-host``;
  anything else is 421. A DNS-rebinding page reaches the server under a name of its own (which
  it pointed at the server's address), so it is refused before it can read or act.
- **Token**, required off loopback (``--token`` or ``LEADERPOOL_DASHBOARD_TOKEN``; the command
  refuses to listen elsewhere without one) and checked whenever one is set: the header
  ``Authorization: Bearer TOKEN``, or the cookie :data:`COOKIE`, which ``GET /?token=TOKEN``
  sets (``HttpOnly``, ``SameSite=Strict``) before redirecting to ``/`` (so the page and its
  ``EventSource`` carry it without the token staying in the address bar). Compared in
  constant time. Anything else is 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable

from aiohttp import web

COOKIE = "leaderpool_dashboard_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class Access:
    """The checks of every request, for a server bound to ``host``."""

    def __init__(self, host: str, token: str | None = None, allowed_hosts: Iterable[str] = ()) -> None:
        self.token = token or None
        self.allowed_hosts = set(LOOPBACK_NAMES) | {host_name(host)} | {host_name(h) for h in allowed_hosts}
        if not is_loopback(host):
            self.allowed_hosts.add(socket.gethostname().lower())

    def refusal(self, request: web.Request) -> web.StreamResponse | None:
        """The answer that refuses ``request`` (421, 401, or the redirect that sets the cookie),
        or None to serve it."""
        name = host_name(request.host)
        if name not in self.allowed_hosts and not _is_address(name):
            return _refused(421, f"this dashboard does not answer to the name {request.host!r} (see --allow-host)")
        if self.token is None:
            return None
        offered = request.query.get("token")
        if offered is not None and request.method == "GET" and request.path == "/":
            if not self._matches(offered):
                return _refused(401, "wrong token")
            found = web.HTTPSeeOther("/")
            found.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return found
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and self._matches(bearer[len("Bearer ") :]):
            return None
        if self._matches(request.cookies.get(COOKIE, "")):
            return None
        return _refused(401, "this dashboard needs its token: open /?token=TOKEN, or send Authorization: Bearer TOKEN")

    def _matches(self, offered: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token.encode())


def _refused(code: int, message: str) -> web.StreamResponse:
    return web.json_response({"ok": False, "error": message}, status=code)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_name(host: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``; lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what the server binds) is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
