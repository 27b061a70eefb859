"""The exceptions leaderpool raises, one root with context::

    LeaderpoolError
    ├── ConfigError          bad pool/member name, ttl, heartbeat, URL, metadata... (also a ValueError)
    │   └── MemberIdInUse    another live process runs this member id in the pool
    ├── NotLeader            a leader-only operation on a member that does not lead
    │   └── LeaseLost        ...because its lead ended (renew deadline passed) while it relied on it
    ├── StaleTerm            a fenced write carried a term older than one already accepted
    ├── RedisUnavailable     Redis could not be reached or did not answer in time
    ├── RedisAuthFailed      Redis refused our credentials or permissions (WRONGPASS, NOAUTH, NOPERM)
    ├── ScriptError          a leaderpool Lua script failed inside Redis: a bug, never retried
    ├── BadPoolData          a pool key holds a type leaderpool never writes there: retried, reported
    └── StateTooLarge        a leader state over the size limit (also a ValueError)
    └── LockNotAcquired      a cluster-wide lock was not taken within its timeout or retries (also a TimeoutError)
    └── LockUpgradeRefused   a read-write lock's write side asked for while the same object holds its read side

Backend (redis-py) exceptions are classified and translated into these in one module,
:mod:`leaderpool.backend.redis_errors`. This one imports nothing from redis-py, so a command-line tool
can name these errors without paying for redis-py's import.
"""

from __future__ import annotations


class LeaderpoolError(Exception):
    """Root of every leaderpool error; carries the pool, member and term where known."""

    def __init__(
        self,
        message: str,
        *,
        pool: str | None = None,
        member: str | None = None,
        term: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pool = pool
        self.member = member
        self.term = term


class ConfigError(LeaderpoolError, ValueError):
    """A setting or name is invalid; the message names it and says what is wrong."""


class MemberIdInUse(ConfigError):
    """Another live process holds this member id in the pool (two processes were given one id: a
    shared ``LEADERPOOL_MEMBER_ID``, two hosts with one hostname, a copied unit file). Raised by
    the ``wait_*`` methods and ``stop()``; the member never joined, and the holder goes on. The
    holder's ``holder_host``, ``holder_pid``, ``holder_since_ms`` (Redis's clock, unix ms) and
    ``holder_incarnation`` say which process it is. See the Guarantees page, "Member identity"."""

    def __init__(
        self,
        message: str,
        *,
        holder_host: str = "",
        holder_pid: int = 0,
        holder_since_ms: int = 0,
        holder_incarnation: str = "",
        pool: str | None = None,
        member: str | None = None,
    ) -> None:
        super().__init__(message, pool=pool, member=member)
        self.holder_host = holder_host
        self.holder_pid = holder_pid
        self.holder_since_ms = holder_since_ms
        self.holder_incarnation = holder_incarnation


class NotLeader(LeaderpoolError):
    """The operation needs leadership and this member does not hold it."""


class LeaseLost(NotLeader):
    """Leadership ended while the operation relied on it: the member still held the leader role
    but its renew deadline had passed (it stops leading at once; Redis may not know yet)."""


class StaleTerm(LeaderpoolError):
    """A fenced write was refused: a newer term already wrote this resource (``highest``)."""

    def __init__(
        self,
        message: str,
        *,
        highest: int = 0,
        pool: str | None = None,
        member: str | None = None,
        term: int | None = None,
    ) -> None:
        super().__init__(message, pool=pool, member=member, term=term)
        self.highest = highest


class RedisUnavailable(LeaderpoolError):
    """Redis did not answer: connection refused, reset, or timed out."""


class RedisAuthFailed(LeaderpoolError):
    """Redis refused our credentials (``WRONGPASS``, ``NOAUTH``) or a command (``NOPERM``): a
    configuration error, which retrying does not fix. ``code`` says which."""

    def __init__(
        self, message: str, *, code: str, pool: str | None = None, member: str | None = None, term: int | None = None
    ) -> None:
        super().__init__(message, pool=pool, member=member, term=term)
        self.code = code


class ScriptError(LeaderpoolError):
    """A leaderpool Lua script raised inside Redis: a bug (or a Redis too old for a command),
    logged with the script's name and surfaced instead of retried."""

    def __init__(
        self, message: str, *, script: str, pool: str | None = None, member: str | None = None, term: int | None = None
    ) -> None:
        super().__init__(message, pool=pool, member=member, term=term)
        self.script = script


class BadPoolData(LeaderpoolError):
    """A pool key holds data leaderpool did not write (a string where a hash belongs, say): the
    script refused before writing anything. Not a bug in leaderpool: the member logs it once and
    retries each heartbeat until the key is fixed (see :mod:`leaderpool.backend.baddata`)."""

    problem: str = ""
    """What Redis said about the data (``BADDATA key K holds a string, not a stream``), whichever
    script met it: members report each problem once."""


class StateTooLarge(LeaderpoolError, ValueError):
    """A leader state (:mod:`leaderpool.state`) whose JSON is over the size limit; nothing was saved."""

    def __init__(
        self, message: str, *, size: int, limit: int, pool: str | None = None, member: str | None = None,
        term: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message, pool=pool, member=member, term=term)
        self.size = size
        self.limit = limit


class LockNotAcquired(LeaderpoolError, TimeoutError):
    """A cluster-wide lock (:mod:`leaderpool.locks.blocking_lock`) was not taken in time: ``resource`` names
    it, ``waited_s`` is how long we waited, ``attempts`` how many times we tried."""

    def __init__(self, message: str, *, resource: str, waited_s: float, attempts: int) -> None:
        super().__init__(message)
        self.resource = resource
        self.waited_s = waited_s
        self.attempts = attempts


class LockUpgradeRefused(LeaderpoolError, RuntimeError):
    """A :class:`~leaderpool.locks.rwlock.ReadWriteLock` was asked for its write side while the same
    object holds its read side (or for either while it holds the write side): release first."""

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource


AUTH_ERROR_CODES = ("WRONGPASS", "NOAUTH", "NOPERM")
"""Error replies that mean our credentials or permissions are wrong: a configuration error."""


# ---- work for the pool (leaderpool.jobs) ----
#
#   LeaderpoolError
#   ├── PayloadError      a payload or reply that is not JSON, or above the size limit (also a ValueError)
#   ├── BacklogFull       submit refused: the pool's job stream holds its cap of unfinished jobs
#   ├── NoTaker           a call nobody can take: no live member runs a handler, or no such member
#   ├── CallTimeout       no reply within the call's timeout (also a TimeoutError)
#   └── JobFailed         the handler raised; for a call, its error (after the last delivery)


class PayloadError(LeaderpoolError, ValueError):
    """A payload (or a handler's reply) is not JSON, or is larger than the configured limit."""


class BacklogFull(LeaderpoolError):
    """The pool's job stream holds ``cap`` unfinished jobs: a submit is refused rather than a job dropped."""

    def __init__(self, message: str, *, cap: int, pool: str | None = None) -> None:
        super().__init__(message, pool=pool)
        self.cap = cap


class NoTaker(LeaderpoolError):
    """Nobody can take the call: no live member of the pool runs a handler (or the named member
    is not live, or runs none). Raised at once instead of waiting out the timeout."""


class CallTimeout(LeaderpoolError, TimeoutError):
    """No reply came within the call's timeout (the job stays submitted: it still runs)."""


class JobFailed(LeaderpoolError):
    """The handler raised: ``error`` is its ``Type: message``; ``deliveries`` how often it ran."""

    def __init__(self, message: str, *, error: str, deliveries: int = 1, pool: str | None = None) -> None:
        super().__init__(message, pool=pool)
        self.error = error
        self.deliveries = deliveries
