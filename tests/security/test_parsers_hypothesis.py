"""Every parser of bytes from outside, fed what hypothesis makes up: the CLI's RESP client, Redis
URLs, pool messages, leader values and connection registrations, member records (metadata
included), history entries, job payloads, requests and replies, the advertised liveness
endpoint. Each returns, or raises only its documented error; none hangs (each example runs
under a deadline) or reads without bound (the RESP client's input is a stream that never ends)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaderpool.backend.protocol import (
    LeaderConn,
    LeaderValue,
    PoolMessage,
    is_number,
    member_info,
    parse_history,
)
from leaderpool.backend.urls import parse_cluster_url, parse_sentinel_url, redact, validate_redis_url
from leaderpool.cli.resp import MAX_BULK_BYTES, MAX_LINE_BYTES, Client, ConnectionFailed, ReplyError
from leaderpool.errors import ConfigError
from leaderpool.fast_failover.endpoints import split_endpoint
from leaderpool.jobs.wire import Job, Reply, Request
from leaderpool.members import MemberInfo
from leaderpool.util.printable import printable

FAST = settings(
    max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
"""Modest and repeatable: the suite stays fast, and a failure shows the same example every run."""

raw_text = st.text(max_size=200) | st.binary(max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


# ---- the CLI's RESP client ----

RESP_PIECES = st.sampled_from(
    [b"+", b"-", b":", b"$", b"*", b"\r\n", b"\r", b"\n", b"-1", b"0", b"3", b"99999999999999999999999",
     b"9" * 30, b"OK", b"abc", b"\x00\xff", str(MAX_BULK_BYTES + 1).encode()]
)  # fmt: skip
resp_bytes = st.lists(RESP_PIECES | st.binary(max_size=8), max_size=40).map(b"".join)


class Endless(io.RawIOBase):
    """A server that sends ``head`` and then the same junk byte for ever."""

    def __init__(self, head: bytes, fill: bytes) -> None:
        self.data, self.fill, self.served = head, fill or b"x", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = len(buffer)
        chunk = (self.data + self.fill * n)[:n]
        self.data = self.data[n:]
        buffer[: len(chunk)] = chunk
        self.served += len(chunk)
        return len(chunk)


def _resp(stream: Any) -> Any:
    client = Client("redis://127.0.0.1:1/0")
    client._file = stream
    return client._read()


@FAST
@given(resp_bytes)
def test_resp_replies_parse_or_fail_with_the_documented_errors(data: bytes) -> None:
    """A finite reply: a value, ReplyError or ConnectionFailed."""
    with contextlib.suppress(ReplyError, ConnectionFailed):
        _resp(io.BufferedReader(io.BytesIO(data)))


@FAST
@given(st.sampled_from([b"", b"+", b"$10\r\n", b"*3\r\n", b"*1\r\n*1\r\n"]), st.binary(min_size=1, max_size=2))
def test_resp_reads_a_stream_that_never_ends_within_bounds(head: bytes, fill: bytes) -> None:
    """A server streaming junk for ever: a protocol error after a bounded read (a line longer
    than its cap, nesting deeper than its cap), never an endless read or unbounded memory."""
    stream = Endless(head, fill)
    with contextlib.suppress(ReplyError, ConnectionFailed):
        _resp(io.BufferedReader(stream))
    assert stream.served <= 64 * MAX_LINE_BYTES


# ---- URLs ----

url_text = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://", "redis:", ""]),
    st.text(alphabet=st.sampled_from([*list("ab1:@/?#%&=[],.-_ "), "\x00", "é"]), max_size=40),
)


@FAST
@given(url_text)
def test_urls_are_usable_or_one_config_error(url: str) -> None:
    """Any URL: accepted or ConfigError (one line); redact never raises."""
    redact(url)
    for parse in (validate_redis_url, parse_sentinel_url, parse_cluster_url):
        try:
            parse(url)
        except ConfigError as exc:
            assert "\n" not in str(exc)


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=6, max_size=30))
def test_no_password_survives_redact_or_an_error(secret: str) -> None:
    """Whatever the password holds, unescaped in the URL, neither redact() nor the URL check's
    error shows it (when it is not also some other part of the URL)."""
    url = f"redis://app:{secret}@10.0.0.5:6379/0"
    assert secret not in redact(url) or secret in "redis://app@10.0.0.5:6379/0"
    try:
        validate_redis_url(url)
    except ConfigError as exc:
        assert secret not in str(exc) or secret in "redis://app@10.0.0.5:6379/0"


# ---- pool messages, leader values, registrations, history ----


@FAST
@given(raw_text)
def test_pool_messages_and_values_parse_or_read_as_foreign(raw: Any) -> None:
    """A pool message: parsed or None; a leader value: parsed, None, or a foreign holder; a
    connection registration: parsed or None. Never an exception."""
    PoolMessage.parse(raw)
    LeaderValue.parse(raw)
    LeaderConn.parse(raw)


@FAST
@given(st.sampled_from(["elected", "left", "resign", "x"]), st.text(max_size=25), st.text(max_size=25))
def test_pool_messages_with_numbers_of_any_kind(event: str, term: str, detail: str) -> None:
    """Terms and hand-over times that are digits of another script, or 4,300 digits, are no
    numbers: the message is ignored, never a ValueError from int()."""
    for raw in (f"{event}|{term}|{detail}|m", f"{event}|1|handoff:{term}|m", f"{term}|{detail}"):
        message = PoolMessage.parse(raw)
        if message is not None:
            message.handoff_ms  # noqa: B018  # the property parses too
        LeaderValue.parse(raw)
    assert not is_number("²") and not is_number("9" * 5000)


@FAST
@given(st.lists(st.tuples(raw_text, st.dictionaries(raw_text, raw_text, max_size=5)), max_size=5))
def test_history_entries_parse(entries: list[tuple[Any, dict[Any, Any]]]) -> None:
    parse_history(entries)


# ---- member records and metadata ----

records = st.one_of(
    raw_text,
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "node": json_values, "host": json_values, "pid": json_values, "priority": json_values,
            "started_at_ms": json_values, "meta": json_values, "liveness": json_values,
        },
    ).map(json.dumps),
    st.just('{"pid": 1e999}'),
    st.just("[" * 5000 + "]" * 5000),
)  # fmt: skip


@FAST
@given(records)
def test_member_records_parse_or_are_skipped(record: Any) -> None:
    """A record (and its metadata): a MemberInfo, or ValueError/TypeError from the parser and
    None from the pool's reader (skipped, reported once)."""
    try:
        info = MemberInfo.from_record("m", record, 1000)
    except (ValueError, TypeError):
        assert member_info("m", record, 1000) is None
        return
    assert isinstance(info.meta, dict)
    printable(info.node), printable(info.host)
    assert member_info("m", record, 1000) is not None


# ---- job payloads, requests, replies ----


@FAST
@given(raw_text, st.dictionaries(st.sampled_from(["p", "r", "x", "?"]), raw_text, max_size=4))
def test_job_entries_never_raise(job_id: Any, fields: dict[str, Any]) -> None:
    """A job stream entry becomes a Job whatever its fields (a bad reply ttl reads as 0)."""
    job = Job.from_fields(job_id, fields, 1)
    assert job.reply_ttl_ms >= 0
    flat: list[Any] = [x for kv in fields.items() for x in kv]
    Job.from_fields(job_id, flat, 1)


@FAST
@given(st.one_of(raw_text, json_values.map(json.dumps), st.just('{"x": 1e999, "id": 1, "p": 1, "r": 1}')))
def test_requests_and_replies_parse_or_raise_value_error(raw: Any) -> None:
    for parse in (Request.parse, Reply.parse):
        with contextlib.suppress(ValueError):
            parse(raw)


# ---- the liveness endpoint a record advertises ----


@FAST
@given(st.text(max_size=60))
def test_an_advertised_endpoint_parses_or_reads_as_none(advertised: str) -> None:
    """``HOST:PORT/NONCE`` from a member record: (host, port, nonce) or None."""
    found = split_endpoint(advertised)
    if found is not None:
        assert 0 < found[1] < 65536 and found[2]


@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000, "", "-1", " 1"])
def test_odd_numbers_are_not_numbers(value: str) -> None:
    """The cases hypothesis found once, kept: superscripts and other scripts' digits, more digits
    than int() takes, signs and spaces."""
    assert not is_number(value)
    assert LeaderValue.parse(f"{value}|m") in (LeaderValue(0, "{foreign}"),)
