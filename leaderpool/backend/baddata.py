"""Hostile or broken data in Redis: what leaderpool skips, and how it says so once.

Anything in Redis may have been written by something else: a member record that is not our JSON
(or is huge), a leader value that is not ``<term>|<member>``, a pool key of the wrong type,
garbage on a pool's events channel. None of it may crash a member or make two leaders:

- a bad member record is skipped (that member is not ranked: it cannot be handed the lead);
- a foreign leader value is a lead *held by someone we do not know*: never overwritten by a
  claim (it may be another program's, or a newer leaderpool's), so the pool waits until the key
  expires or an operator deletes it (``leaderpool-cli doctor`` names it);
- a pool key of the wrong type makes the scripts refuse before writing anything (``BADDATA``),
  and the member retries each heartbeat until the key is fixed; one exception, for the cost of
  a beat: a key an ordinary heartbeat only reads, in one ``MGET``, and does not write (a
  follower's view of the leader's connection registration, who just resigned) reads as absent
  when it holds another type (the follower then waits for the lease instead of proving a death,
  or sees no resignation); the keys a beat writes, and the leader key, still refuse;
- a pool message that does not parse is ignored (the member re-reads the pool instead).
- a schedule record or leader state that does not parse reads as none, and the leader's next run
  or save replaces it.

Each distinct problem is logged once per process (:func:`report`), at warning level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_RECORD_BYTES = 64 * 1024
"""A member record longer than this is skipped: every read of the pool would carry it."""

FOREIGN_HOLDER = "{foreign}"
"""The holder of a leader value that is not ``<term>|<member>``; braces are not allowed in member
ids, so no member can be mistaken for it."""

BAD_DATA_CODE = "BADDATA"
"""The error reply a script gives when a pool key holds the wrong type (see :func:`type_guard`)."""

_REPORTS_MAX = 200
_reported: set[tuple[str, str]] = set()


def report(event: str, subject: str, **context: Any) -> None:
    """Log ``event`` about ``subject`` (a key, a member, a message) the first time only; after
    :data:`_REPORTS_MAX` distinct reports, nothing more (hostile data must not flood the logs)."""
    key = (event, subject[:200])
    if key in _reported or len(_reported) > _REPORTS_MAX:
        return
    _reported.add(key)
    from leaderpool.util.log import get_logger  # on the first report: reading a pool needs no logging

    log = get_logger("leaderpool.baddata")
    if len(_reported) > _REPORTS_MAX:
        log.warning("bad_data_reports_capped", reported=_REPORTS_MAX)
        return
    log.warning(event, subject=subject[:200], **context)


def type_guard(types: Sequence[str | None]) -> str:
    """Lua run first in a script: ``types[i]`` is the Redis type ``KEYS[i + 1]`` must have (or not
    exist); None for a key not checked. A key of another type is an error reply ``BADDATA ...``
    before the script writes anything."""
    wanted = ", ".join("false" if t is None else f"'{t}'" for t in types)
    return f"""
do
  local wanted = {{{wanted}}}
  for i = 1, #wanted do
    if wanted[i] then
      local t = redis.call('TYPE', KEYS[i])['ok']
      if t ~= 'none' and t ~= wanted[i] then
        return redis.error_reply('{BAD_DATA_CODE} key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a ' .. wanted[i])
      end
    end
  end
end
"""


CHECKED_READS = f"""
local bad_data = false
-- KEY's type checked with TYPE: bad_data set (the BADDATA reply) unless it is WANT or none
local function check_type(key, want)
  if bad_data then return end
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    bad_data = redis.error_reply('{BAD_DATA_CODE} key ' .. key .. ' holds a ' .. t .. ', not a ' .. want)
  end
end
-- a read of KEY (of type WANT) that checks its type on the way: the reply; false with bad_data
-- set when it failed (the BADDATA reply when the key holds another type, else the error itself)
local function checked(want, command, key, ...)
  if bad_data then return false end
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    check_type(key, want)
    bad_data = bad_data or reply
    return false
  end
  return reply
end
"""
"""Lua for a script that checks its keys' types itself instead of :func:`type_guard`'s TYPE per key
(the heartbeat: on every beat of every member, each Redis call counts). Before its first write the
script reads each key it may touch with ``checked`` (a command of the key's type, run with
``redis.pcall``: a WRONGTYPE error becomes the same ``BADDATA`` refusal) or checks it with
``check_type`` (a key it writes without reading), then returns ``bad_data`` if set."""


def is_bad_data_reply(exc: BaseException) -> bool:
    return str(exc).startswith(f"{BAD_DATA_CODE} ")
