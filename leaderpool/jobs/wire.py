"""What a job, a call and a reply look like in Redis, and the handler's view of one.

Payloads and replies are JSON text, never pickle; one encoder checks type and size. In Redis::

    job stream entry   p=<payload JSON> [r=<reply key> x=<reply ttl ms>]   (r, x: a call's)
    inbox request      {"id", "p": <payload JSON>, "r": <reply key>, "x": <ttl ms>, "k": "member"|"multicall"}
    reply              {"ok": <reply>} or {"error": "<Type: message>", "deliveries": n}, plus "member"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from leaderpool.backend.protocol import text
from leaderpool.errors import JobFailed, PayloadError


def encode(value: Any, max_bytes: int, *, what: str = "payload") -> str:
    """``value`` as compact JSON text; :class:`PayloadError` when it is not JSON or too large."""
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"the {what} is not JSON: {exc}") from None
    size = len(encoded.encode())
    if size > max_bytes:
        raise PayloadError(f"the {what} is {size} bytes as JSON, above the limit of {max_bytes}")
    return encoded


class Kind:
    """How a request reached the handler."""

    JOB = "job"
    """From the job stream, on the leader (``submit`` or ``call`` without a member)."""
    MEMBER = "member"
    """A targeted call to this member (``call(..., member=ID)``)."""
    MULTICALL = "multicall"
    """One request of a multicall, sent to every live member."""


@dataclass(frozen=True)
class JobContext:
    """What a handler learns besides the payload. ``delivery`` counts from 1: above 1, an earlier
    delivery may have done (part of) the work: use ``job_id`` to make the handler idempotent."""

    pool: str
    member: str
    job_id: str
    delivery: int
    term: int | None
    """The leader's term the job runs under (None for a targeted call on a follower)."""
    kind: str = Kind.JOB
    log: Any = field(default=None, compare=False, repr=False)


Handler = Callable[[Any, JobContext], Any]
"""``handler(payload, ctx)`` returns the reply (JSON-able), plain or as a coroutine."""


class Job(NamedTuple):
    """One entry of the job stream, as delivered to the leader."""

    job_id: str
    payload: str
    """JSON text."""
    reply_key: str
    """Where a call waits for the reply ("" for a plain submit)."""
    reply_ttl_ms: int
    delivery: int

    @classmethod
    def from_fields(cls, job_id: Any, fields: Any, delivery: int) -> Job:
        """Never raises: a reply ttl that is not a number reads as 0 (a job that could not be read
        would be delivered, and fail to be read, again and again)."""
        f = _fields(fields)
        ttl = f.get("x", "0")
        ttl_ms = int(ttl) if 0 < len(ttl) <= 15 and ttl.isascii() and ttl.isdigit() else 0
        return cls(text(job_id), f.get("p", "null"), f.get("r", ""), ttl_ms, delivery)


def _fields(raw: Any) -> dict[str, str]:
    """Stream fields as a dict: redis-py gives a dict, Lua a flat list."""
    if isinstance(raw, Mapping):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw or [])
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


class Request(NamedTuple):
    """A targeted call or one request of a multicall, in a member's inbox."""

    request_id: str
    payload: str
    reply_key: str
    reply_ttl_ms: int
    kind: str

    def encode(self) -> str:
        return json.dumps(
            {"id": self.request_id, "p": self.payload, "r": self.reply_key, "x": self.reply_ttl_ms, "k": self.kind},
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, raw: Any) -> Request:
        """ValueError, and nothing else, for what is not a request leaderpool wrote."""
        try:
            d = json.loads(text(raw))
            return cls(str(d["id"]), str(d["p"]), str(d["r"]), int(d["x"]), str(d.get("k", Kind.MEMBER)))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
            raise ValueError(f"not a request: {type(exc).__name__}") from None


def ok_reply(reply_json: str, member: str | None = None) -> str:
    """A reply as stored: the handler's JSON wrapped, without decoding it again."""
    head = "" if member is None else f'"member":{json.dumps(member)},'
    return "{" + head + '"ok":' + reply_json + "}"


def error_reply(error: str, deliveries: int = 1, member: str | None = None) -> str:
    body: dict[str, Any] = {"error": error, "deliveries": deliveries}
    if member is not None:
        body["member"] = member
    return json.dumps(body, separators=(",", ":"))


class Reply(NamedTuple):
    member: str | None
    ok: bool
    value: Any
    """The handler's reply when ok, else its error text."""
    deliveries: int = 1

    @classmethod
    def parse(cls, raw: Any) -> Reply:
        """ValueError, and nothing else, for what is not a reply leaderpool wrote."""
        try:
            d = json.loads(text(raw))
            if not isinstance(d, dict):
                raise TypeError
            member = d.get("member")
            if member is not None and not isinstance(member, str):
                raise TypeError
            if "ok" in d:
                return cls(member, True, d["ok"])
            return cls(member, False, str(d.get("error", "")), int(d.get("deliveries", 1)))
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            raise ValueError(f"not a reply: {type(exc).__name__}") from None

    def result(self, pool: str) -> Any:
        """The value, or :class:`JobFailed` raised with the handler's error."""
        if self.ok:
            return self.value
        where = f" on {self.member}" if self.member else ""
        raise JobFailed(
            f"the handler failed{where} ({self.deliveries} deliveries): {self.value}",
            error=str(self.value),
            deliveries=self.deliveries,
            pool=pool,
        )


@dataclass(frozen=True)
class MulticallResult:
    """What a multicall gathered: ``replies`` by member (the handler's return value), ``errors``
    by member (its exception as ``Type: message``), and ``missing``: the members that were sent
    the request and did not answer in time (frozen, overloaded, or died meanwhile)."""

    replies: dict[str, Any]
    errors: dict[str, str]
    missing: list[str]

    @property
    def members(self) -> list[str]:
        """Every member the request went to."""
        return sorted([*self.replies, *self.errors, *self.missing])
