"""Redis URL checks with one-line errors. Kept apart from :mod:`leaderpool.clients`, which
imports redis-py, so the command-line tools can check a URL before (or without) paying for it."""

from __future__ import annotations

from urllib.parse import urlsplit

from leaderpool.errors import ConfigError

SCHEMES = ("redis", "rediss", "unix")


def validate_redis_url(url: object) -> str:
    """Return ``url`` if it is a usable Redis URL, else raise :class:`ConfigError`."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"redis URL must be a non-empty string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"redis URL {url!r} has scheme {parts.scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"redis URL {url!r} names no socket path (unix:///path/to/redis.sock)")
        return url
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"redis URL {url!r} has an invalid port") from None
    if not parts.hostname:
        raise ConfigError(f"redis URL {url!r} names no host (redis://HOST:PORT/DB)")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"redis URL {url!r} has port {port} outside 1-65535")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ConfigError(f"redis URL {url!r} has database {db!r}; it must be a number")
    return url
