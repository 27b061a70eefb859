"""Redis URL checks with one-line errors. Kept apart from :mod:`leaderpool.backend.clients`, which
imports redis-py, so the command-line tools can check a URL before (or without) paying for it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from leaderpool.errors import ConfigError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)
CLUSTER_PORT = 6379
CLUSTER_NO_NAMES = (
    "unique names are not supported on Redis Cluster: a name's registration and its holder's heartbeat "
    "update the pool's slot and the names' slot ({names}) in one script; use a pool's leader instead"
)
CLUSTER_NO_WAIT = "waiting for replicas (WAIT) is not supported on Redis Cluster yet"
SENTINEL_PORT = 26379
SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password", "sentinel_ssl"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SentinelURL:
    """``redis+sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME[/DB][?options]``:
    the Sentinels to ask, the master's name, and how to talk to the master (``rediss+`` for TLS)
    and to the Sentinels (``sentinel_username``, ``sentinel_password``, ``sentinel_ssl``)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    sentinel_ssl: bool = False

    def describe(self) -> str:
        """Without credentials, for logs and listings."""
        scheme = "rediss+sentinel" if self.ssl else "redis+sentinel"
        hosts = ",".join(f"{_host_text(h)}:{p}" for h, p in self.sentinels)
        return f"{scheme}://{hosts}/{self.master}/{self.db}"


@dataclass(frozen=True)
class ClusterURL:
    """``redis+cluster://[user:pass@]host:port[,host:port...][/0]``: the nodes to start from (any
    of them will do: the client learns the rest from ``CLUSTER SLOTS``), the credentials every
    node takes, and ``rediss+`` for TLS. A cluster has one database, 0."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def describe(self) -> str:
        """Without credentials, for logs and listings."""
        scheme = "rediss+cluster" if self.ssl else "redis+cluster"
        return f"{scheme}://" + ",".join(f"{_host_text(h)}:{p}" for h, p in self.nodes)


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_HIDDEN_OPTIONS = ("password", "sentinel_password")


def redact(url: str) -> str:
    """``url`` as given (database, query and all) without its password, for every message and
    log line: ``redis://user:secret@host/0`` -> ``redis://user@host/0``; a ``password=`` query
    option (``unix://`` URLs) is shown as ``password=...``.

    Whatever the URL looks like: a password holding ``/``, ``?`` or ``#`` unquoted (base64 often
    holds ``/``) ends the authority early for a URL parser, which then finds the rest of the
    secret in the path or the query. So when an ``@`` is left after the hidden options, everything
    before the last one is credentials, and only the user (up to the first ``:``) is kept."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, tail = _split_authority(rest)
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        netloc = _user_at(userinfo) + hosts
    tail = _hide_options(tail)
    if "@" in tail:  # the credentials held a / ? or #: the host is after the last @
        userinfo, _, after = rest.rpartition("@")
        netloc, tail = _split_authority(after)
        netloc, tail = _user_at(userinfo) + netloc, _hide_options(tail)
        if "@" in tail:  # an @ in an option's value: hide it all but the scheme
            return f"{scheme}{sep}..."
    return f"{scheme}{sep}{netloc}{tail}"


def _split_authority(rest: str) -> tuple[str, str]:
    """(authority, the rest from the first ``/``, ``?`` or ``#``)."""
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    cut = min(ends) if ends else len(rest)
    return rest[:cut], rest[cut:]


def _user_at(userinfo: str) -> str:
    """``user@`` from ``user:password`` (nothing when there is no plain user name before a ``:``)."""
    user, colon, _ = userinfo.partition(":")
    if not colon or any(c in user for c in "/?#@"):
        return ""
    return f"{user}@" if user else ""


def _hide_options(tail: str) -> str:
    path, q, query = tail.partition("?")
    if not q:
        return tail
    shown = (f"{p.partition('=')[0]}=..." if p.partition("=")[0] in _HIDDEN_OPTIONS else p for p in query.split("&"))
    return f"{path}?{'&'.join(shown)}"


def _echo(url: str, fragment: str) -> str:
    """``fragment`` of ``url`` quoted in a message only when the redacted URL shows it too (a
    fragment cut from a malformed URL may be a piece of its password)."""
    return repr(fragment) if fragment in redact(url) else "(a part hidden: it may hold credentials)"


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0] in SENTINEL_SCHEMES


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterURL:
    """The parts of a Cluster URL, or :class:`ConfigError` naming what is wrong."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    netloc, q, query = netloc.partition("?")
    tail, q2, query2 = tail.partition("?")
    if q or q2:
        raise ConfigError(
            f"redis URL {redact(url)!r}: a Cluster URL takes no options ({_echo(url, '?' + (query or query2))})"
        )
    if tail.strip("/") not in ("", "0"):
        raise ConfigError(f"redis URL {redact(url)!r}: a Redis Cluster has only database 0 (redis+cluster://HOST:PORT)")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    nodes = tuple(_address(url, part, CLUSTER_PORT, "node") for part in hostlist.split(","))
    user, colon, password = userinfo.partition(":")
    return ClusterURL(
        nodes=nodes,
        username=unquote(user) or None,
        password=unquote(password) if colon else None,
        ssl=scheme == "rediss+cluster",
    )


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a Sentinel URL, or :class:`ConfigError` naming what is wrong."""
    scheme, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    tail, _, query = tail.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    sentinels = tuple(_address(url, part, SENTINEL_PORT, "Sentinel") for part in hostlist.split(","))
    path = [unquote(p) for p in tail.split("/") if p] if slash else []
    if not path:
        raise ConfigError(f"redis URL {redact(url)!r} names no master (redis+sentinel://HOST:PORT/MASTER_NAME/DB)")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(f"redis URL {redact(url)!r}: the path must be /MASTER_NAME or /MASTER_NAME/DB (a number)")
    user, colon, password = userinfo.partition(":")
    options = parse_qs(query, keep_blank_values=True)
    unknown = set(options) - SENTINEL_OPTIONS
    if unknown:
        raise ConfigError(
            f"redis URL {redact(url)!r} has unknown option(s) {', '.join(sorted(unknown))}; "
            f"a Sentinel URL takes {', '.join(sorted(SENTINEL_OPTIONS))}"
        )
    ssl = scheme == "rediss+sentinel"

    def option(name: str) -> str | None:
        values = options.get(name)
        return unquote(values[-1]) if values else None

    sentinel_ssl = option("sentinel_ssl")
    if sentinel_ssl is not None and sentinel_ssl.lower() not in (*_TRUE, *_FALSE):
        raise ConfigError(f"redis URL {redact(url)!r}: sentinel_ssl must be 1/true/yes/on or 0/false/no/off")
    return SentinelURL(
        sentinels=sentinels,
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(password) if colon else None,
        ssl=ssl,
        sentinel_username=option("sentinel_username"),
        sentinel_password=option("sentinel_password"),
        sentinel_ssl=ssl if sentinel_ssl is None else sentinel_ssl.lower() in _TRUE,
    )


def _address(url: str, part: str, default_port: int, what: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{part}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is no number, or an unbalanced [ ] (an IPv6 address)
        raise ConfigError(f"redis URL {redact(url)!r} has an invalid port in {_echo(url, part)}") from None
    if not host:
        raise ConfigError(f"redis URL {redact(url)!r} names an empty {what} address (HOST:PORT,HOST:PORT)")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"redis URL {redact(url)!r} has port {port} outside 1-65535")
    return host, port or default_port


def validate_redis_url(url: object) -> str:
    """Return ``url`` if it is a usable Redis URL, else raise :class:`ConfigError`."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"redis URL must be a non-empty string, got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [ or ] (urllib: "Invalid IPv6 URL")
        raise ConfigError(
            f"redis URL {redact(url)!r} has an unbalanced '[' or ']' (an IPv6 host is [ADDRESS])"
        ) from None
    if parts.scheme in SCHEMES and not url.startswith(f"{parts.scheme}://"):  # redis-py needs the //
        raise ConfigError(f"redis URL {redact(url)!r} lacks '//' after '{parts.scheme}:' ({parts.scheme}://...)")
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"redis URL {redact(url)!r} has scheme {parts.scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if parts.scheme != "unix" and "@" in _hide_options(_split_authority(url.partition("://")[2])[1]):
        raise ConfigError(
            f"redis URL {redact(url)!r}: its credentials hold '/', '?' or '#' unescaped; percent-encode them "
            "(%2F, %3F, %23) or give the password apart (--redis-password-file, LEADERPOOL_REDIS_PASSWORD)"
        )
    if parts.scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
        return url
    if parts.scheme in CLUSTER_SCHEMES:
        parse_cluster_url(url)
        return url
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"redis URL {redact(url)!r} names no socket path (unix:///path/to/redis.sock)")
        return url
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"redis URL {redact(url)!r} has an invalid port") from None
    if not parts.hostname:
        raise ConfigError(f"redis URL {redact(url)!r} names no host (redis://HOST:PORT/DB)")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"redis URL {redact(url)!r} has port {port} outside 1-65535")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ConfigError(f"redis URL {redact(url)!r} has database {_echo(url, db)}; it must be a number")
    return url
