"""The one place where backend (redis-py) exceptions are classified and translated into
leaderpool's (:mod:`leaderpool.errors`).

Every ``except`` on a redis-py exception in the library uses this module's tuples
(:data:`REDIS_FAILURES`, :data:`RETRYABLE`, :data:`COMMAND_REFUSED`) or :func:`classify`, and
:func:`translate` / :func:`translate_redis_errors` turn a backend exception into one of ours.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import redis.exceptions

from leaderpool.backend.baddata import is_bad_data_reply
from leaderpool.errors import (
    AUTH_ERROR_CODES,
    BadPoolData,
    LeaderpoolError,
    RedisAuthFailed,
    RedisUnavailable,
    ScriptError,
)

REDIS_FAILURES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.RedisClusterException,  # a cluster client that reached no node (the cause is chained)
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)
"""Redis is unreachable, slow or (for now) refusing writes: retry."""

RETRYABLE: tuple[type[BaseException], ...] = (
    *REDIS_FAILURES,
    redis.exceptions.RedisError,
    RedisUnavailable,
    RedisAuthFailed,
    BadPoolData,
)
"""What a background loop survives and retries (auth failures and bad data slowly: see :func:`classify`).
Not :class:`ScriptError`: a bug is surfaced, not retried."""

COMMAND_REFUSED: tuple[type[BaseException], ...] = (redis.exceptions.ResponseError,)
"""A command Redis answered with an error (``CONFIG`` on a managed service, say)."""


_AUTH_EXCEPTIONS: tuple[type[BaseException], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.NoPermissionError,
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
)


class Failure(str, Enum):
    """What kind of failure a backend exception is, for a background loop to act on."""

    TIMEOUT = "timeout"
    """No answer in time: Redis, the network or our event loop is slow. Retry."""
    UNAVAILABLE = "unavailable"
    """Connection refused or lost, loading, read-only replica. Retry."""
    AUTH = "auth"
    """Credentials or permissions refused: log once at error level, retry slowly."""
    SCRIPT = "script"
    """A script failed inside Redis: a bug. Log at error level and surface it."""
    DATA = "data"
    """A pool key holds what leaderpool never writes there: log once, retry slowly."""
    OTHER = "other"
    """Another error reply from Redis. Retry."""


def auth_failure_code(exc: BaseException) -> str | None:
    """``NOPERM`` (a command refused by the ACL), ``WRONGPASS/NOAUTH`` (credentials refused or
    missing) or the code an error reply starts with; None if ``exc`` is no auth failure.
    (redis-py strips the code from the messages of the exceptions it maps.)"""
    if isinstance(exc, RedisAuthFailed):
        return exc.code
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, redis.exceptions.RedisClusterException) and cause is not None:
        return auth_failure_code(cause)  # no node let us in: say why
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "NOPERM"
    if isinstance(exc, _AUTH_EXCEPTIONS):
        return "WRONGPASS/NOAUTH"
    if isinstance(exc, redis.exceptions.ResponseError):
        head = str(exc).lstrip().split(" ", 1)[0]
        return head if head in AUTH_ERROR_CODES else None
    return None


def is_acl_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is an ACL refusing a command, sent directly (``NOPERM``) or called inside a
    script (a plain error reply: "The user executing the script can't run this command"):
    retrying cannot help."""
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and "can't run this command" in str(exc)


def is_auth_failure(exc: BaseException) -> bool:
    return auth_failure_code(exc) is not None


def classify(exc: BaseException) -> Failure:
    if is_auth_failure(exc):
        return Failure.AUTH
    if isinstance(exc, BadPoolData):
        return Failure.DATA
    if isinstance(exc, ScriptError):
        return Failure.SCRIPT
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, redis.exceptions.TimeoutError)):
        return Failure.TIMEOUT
    if isinstance(exc, (*REDIS_FAILURES, RedisUnavailable)):
        return Failure.UNAVAILABLE
    return Failure.OTHER


def translate(
    exc: BaseException,
    *,
    script: str | None = None,
    pool: str | None = None,
    member: str | None = None,
    term: int | None = None,
) -> LeaderpoolError | None:
    """``exc`` as a leaderpool error (to ``raise ... from exc``), None if it is none we translate.
    An error reply to a ``script`` is a :class:`ScriptError` unless it is an auth failure."""
    if isinstance(exc, LeaderpoolError):
        return exc
    detail = str(exc) or type(exc).__name__
    code = auth_failure_code(exc)
    if code is not None:
        what = "a command" if code == "NOPERM" else "our credentials"
        return RedisAuthFailed(
            f"redis refused {what} ({code}): {detail}", code=code, pool=pool, member=member, term=term
        )
    if isinstance(exc, REDIS_FAILURES):
        return RedisUnavailable(f"redis unavailable: {detail}", pool=pool, member=member, term=term)
    if script is not None and isinstance(exc, redis.exceptions.ResponseError) and is_bad_data_reply(exc):
        return BadPoolData(
            f"script {script} refused: {detail}: delete or repair that key", pool=pool, member=member, term=term
        )
    if script is not None and isinstance(exc, redis.exceptions.ResponseError):
        return ScriptError(f"script {script} failed: {detail}", script=script, pool=pool, member=member, term=term)
    return None


@contextmanager
def translate_redis_errors(
    *, pool: str | None = None, member: str | None = None, term: int | None = None
) -> Iterator[None]:
    """Re-raise backend failures as leaderpool errors with context (:func:`translate`)."""
    try:
        yield
    except RETRYABLE as exc:
        translated = translate(exc, pool=pool, member=member, term=term)
        if translated is None:
            raise
        raise translated from exc


_SENTINEL_HEAD = "No master found for "
_ERROR_LINE_MAX = 300


def short_reason(exc: BaseException) -> str:
    """``exc`` in one short line, for logs and error lines. redis-py's Sentinel failure carries
    the repr of every Sentinel client it tried (about 1,000 characters each): it becomes
    ``No master found for 'NAME': no Sentinel answered (the last one's error)``."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    head, sep, errors = text.partition(" : ")
    if head.startswith(_SENTINEL_HEAD) and sep:
        last = errors.rpartition(" - ")[2]
        last = re.sub(r"^\w+:(?=\w+(Error|Exception)\b)", "", last)  # "network:ConnectionError: ..." as Python says it
        return f"{head}: no Sentinel answered ({last[:_ERROR_LINE_MAX]})"
    return text if len(text) <= _ERROR_LINE_MAX else text[: _ERROR_LINE_MAX - 3] + "..."


def is_master_unknown(exc: BaseException) -> bool:
    """Sentinels answered, and none named a (healthy) master of that name."""
    text = str(exc)
    return text.startswith(_SENTINEL_HEAD) and " : " not in text
