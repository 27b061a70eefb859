"""Redis URL checks for the command line, without importing redis-py.

The same rules and words as :func:`leaderpool.clients.validate_redis_url` (the library's, in a
module that imports redis-py's asyncio client): a test holds the two to the same answers. The
library could keep its check in a module of its own that both import.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str) -> str:
    """Return ``url`` if it is a usable Redis URL, else raise ``ValueError`` saying why."""
    if not url.strip():
        raise ValueError(f"redis URL must be a non-empty string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"redis URL {url!r} has scheme {parts.scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"redis URL {url!r} names no socket path (unix:///path/to/redis.sock)")
        return url
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"redis URL {url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"redis URL {url!r} names no host (redis://HOST:PORT/DB)")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"redis URL {url!r} has port {port} outside 1-65535")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"redis URL {url!r} has database {db!r}; it must be a number")
    return url
