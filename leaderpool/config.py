"""Member settings: data, frozen and validated at construction, units in the names."""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leaderpool.errors import ConfigError
from leaderpool.members import Ranker
from leaderpool.util.constants import DEFAULT_PREFIX, DEFAULT_TTL_S, MAX_META_BYTES, MAX_NODE_LENGTH, MIN_TTL_S
from leaderpool.util.naming import validate_name


def default_member_id() -> str:
    """``host-pid-random``: unique per process, readable in listings."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-_.") or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def _validate_meta(meta: object) -> None:
    """Metadata is stored as JSON in the member's record: string keys, JSON values, bounded size."""
    if not isinstance(meta, Mapping):
        raise ConfigError(f"meta must be a mapping, got {type(meta).__name__}")
    for key, value in meta.items():
        if not isinstance(key, str):
            raise ConfigError(f"meta keys must be strings, got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"meta[{key!r}] is not JSON-serialisable: {exc}") from None
    size = len(json.dumps(dict(meta), separators=(",", ":")).encode())
    if size > MAX_META_BYTES:
        raise ConfigError(f"meta is {size} bytes as JSON, at most {MAX_META_BYTES}")


def parse_host_port(name: str, value: str, *, port_required: bool = False) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[IPV6]:PORT`` as (host, port); "" and 0 where
    left out (the default address, any free port)."""
    text = value.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError(f"{name} must be HOST:PORT, got {value!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if port_required and not port_text:
        raise ConfigError(f"{name} must be HOST:PORT, got {value!r}")
    try:
        port = int(port_text) if port_text else 0
    except ValueError:
        raise ConfigError(f"{name} must be HOST:PORT with a numeric port, got {value!r}") from None
    if not 0 <= port <= 65535 or any(c.isspace() or c in "/{}" for c in host):
        raise ConfigError(f"{name} must be HOST:PORT with a port in 0-65535, got {value!r}")
    return host, port


@dataclass(frozen=True)
class MemberConfig:
    """Everything one member of one pool needs to know.

    ``ttl_s`` is the lease: a member (and a leader) that stops heartbeating is gone after it.
    ``heartbeat_s`` (default ttl/3) is how often the lease is refreshed. ``renew_deadline_s``
    (default halfway between heartbeat and ttl, so 2/3 of the ttl by default) is how long a leader
    may go without a successful renewal, on its own monotonic clock, before it steps down; it is
    shorter than the ttl so the old leader has stopped before anyone else can be elected.
    """

    pool: str
    member_id: str = field(default_factory=default_member_id)
    node: str = field(default_factory=socket.gethostname)
    priority: int = 0
    ttl_s: float = DEFAULT_TTL_S
    heartbeat_s: float | None = None
    renew_deadline_s: float | None = None
    takeover: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Free-form data other members and tools see (JSON, at most ``MAX_META_BYTES`` = 4 KiB encoded)."""
    prefix: str = DEFAULT_PREFIX
    avoid_pools: Sequence[str] = ()
    """Anti-affinity: rank down members whose node runs the leader of one of these pools."""
    ranker: Ranker | None = None
    """A callable ordering live members best first; default: priority, then longest running."""
    wait_replicas: int = 0
    """Act on a new lead only once this many replicas hold it (Redis ``WAIT``, up to
    half a heartbeat per try): a Sentinel failover to a replica then cannot forget a lead that was acted on. 0
    (the default): act at once."""
    fast_failover: bool = True
    """Replace a leader whose process died within milliseconds instead of after its lease: a
    liveness endpoint per process, watched by the next in line, deaths confirmed through Redis
    (see :mod:`leaderpool.fast_failover.failover`)."""
    liveness_address: str | None = None
    """Where this process's liveness endpoint listens, ``HOST:PORT`` (``HOST``, ``:PORT``); port 0
    (the default) is any free port, the default host is the local address used to reach Redis;
    ``0.0.0.0`` listens everywhere and advertises that address."""
    liveness_advertise: str | None = None
    """``HOST:PORT`` other members connect to, when it differs from where we listen (NAT, a
    container's published port); default: the listening address."""

    def __post_init__(self) -> None:
        validate_name("pool", self.pool)
        validate_name("member id", self.member_id)
        validate_name("prefix", self.prefix)
        if not isinstance(self.node, str) or not self.node or len(self.node) > MAX_NODE_LENGTH:
            raise ConfigError(
                f"node must be a non-empty string of at most {MAX_NODE_LENGTH} characters, got {self.node!r}"
            )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ConfigError(f"priority must be an integer, got {self.priority!r}")
        ttl = _positive_seconds("ttl", self.ttl_s)
        if ttl < MIN_TTL_S:
            raise ConfigError(f"ttl must be at least {MIN_TTL_S} seconds, got {ttl!r}")
        heartbeat = ttl / 3 if self.heartbeat_s is None else _positive_seconds("heartbeat", self.heartbeat_s)
        if heartbeat >= ttl:
            raise ConfigError(f"heartbeat ({heartbeat:g}s) must be shorter than ttl ({ttl:g}s)")
        deadline = (
            (ttl + heartbeat) / 2
            if self.renew_deadline_s is None
            else _positive_seconds("renew deadline", self.renew_deadline_s)
        )
        if not heartbeat < deadline < ttl:
            raise ConfigError(
                f"renew deadline ({deadline:g}s) must lie between heartbeat ({heartbeat:g}s) and ttl ({ttl:g}s)"
            )
        _validate_meta(self.meta)
        for other in self.avoid_pools:
            validate_name("avoided pool", other)
        if isinstance(self.wait_replicas, bool) or not isinstance(self.wait_replicas, int) or self.wait_replicas < 0:
            raise ConfigError(f"wait_replicas must be an integer >= 0, got {self.wait_replicas!r}")
        if self.liveness_address is not None:
            parse_host_port("liveness address", self.liveness_address)
        if self.liveness_advertise is not None:
            parse_host_port("liveness advertise", self.liveness_advertise, port_required=True)
        if self.ranker is not None and not callable(self.ranker):
            raise ConfigError(f"ranker must be callable, got {self.ranker!r}")
        object.__setattr__(self, "ttl_s", ttl)
        object.__setattr__(self, "heartbeat_s", heartbeat)
        object.__setattr__(self, "renew_deadline_s", deadline)
        object.__setattr__(self, "meta", dict(self.meta))
        object.__setattr__(self, "avoid_pools", tuple(self.avoid_pools))

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    @property
    def heartbeat(self) -> float:
        """``heartbeat_s`` after defaults (always a float)."""
        assert self.heartbeat_s is not None
        return self.heartbeat_s

    @property
    def renew_deadline(self) -> float:
        """``renew_deadline_s`` after defaults (always a float)."""
        assert self.renew_deadline_s is not None
        return self.renew_deadline_s
