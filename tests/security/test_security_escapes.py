"""No string from Redis reaches an operator's terminal raw: member ids, records (node, host,
metadata), history, names, dead letters and schedules written by a hostile client are printed
with their control characters escaped by every command, and ``--json`` stays valid JSON that
carries them exactly."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import redis

from leaderpool.backend.keys import Keyspace, NameKeys
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.printable import printable, printable_lines
from tests.support.worker_procs import ROOT, clean_env

TITLE = "\x1b]0;owned\x07"  # sets the window title
ERASE = "\x1b[2K\r"  # erases the line, back to its start
FAKE_ROW = "\r\n  *  root  fake-node"  # a carriage return and a newline faking a table row
COLOUR = "\x1b[31mred\x9b0m"  # a colour (7-bit CSI) and an 8-bit CSI
BIDI = "\u202egnp.exe"
MEMBER = "m" + ERASE + "x"
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")
"""What must never reach the terminal (a newline only as the output's own line breaks)."""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``leaderpool-cli ARGS``, its output decoded without newline translation (a text-mode
    pipe would turn the carriage return this is about into a line break)."""
    argv = [sys.executable, "-m", "leaderpool.cli", *args]
    done = subprocess.run(argv, capture_output=True, timeout=60, cwd=ROOT, env=clean_env(), check=False)
    return subprocess.CompletedProcess(
        argv, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def _plant(client: redis.Redis) -> None:
    """A pool whose leader, member record, history, dead letter and schedule, and a unique name,
    carry escapes, as a hostile writer with the pool's ACL could write them."""
    k = Keyspace("esc")
    now_ms = int(client.time()[0]) * 1000
    record = {
        "node": TITLE + "node", "host": "host" + FAKE_ROW, "pid": 7, "priority": 0,
        "started_at_ms": now_ms - 1000, "meta": {"zone" + COLOUR: BIDI},
    }  # fmt: skip
    client.hset(k.members, MEMBER, json.dumps(record))
    client.zadd(k.leases, {MEMBER: now_ms + 600_000})
    client.zadd(k.ranking, {MEMBER: 0})
    client.set(k.term, 1)
    client.set(k.leader, f"1|{MEMBER}", px=600_000)
    client.xadd(k.history, {"event": "elected", "term": "1", "member": MEMBER, "reason": COLOUR, "t_ms": now_ms})
    client.xadd(k.dead, {"job": "1-1", "p": json.dumps(TITLE), "error": "boom" + FAKE_ROW, "deliveries": "5"})
    client.hset(
        k.schedules,
        "nightly" + ERASE,
        json.dumps({"spec": "every 60s" + TITLE, "catch_up": "skip", "member": MEMBER, "outcome": COLOUR}),
    )
    names = NameKeys()
    client.hset(
        names.owners, "n" + TITLE, json.dumps({"pool": "esc", "member": MEMBER, "node": FAKE_ROW, "value": BIDI})
    )
    client.hset(names.owners, "plain", json.dumps({"pool": "esc", "member": MEMBER, "node": TITLE, "value": FAKE_ROW}))
    client.zadd(names.deadlines, {"n" + TITLE: now_ms + 600_000, "plain": now_ms + 600_000})


class TestTheHelper:
    def test_control_characters_are_escaped_and_text_is_kept(self) -> None:
        """C0, DEL, C1 and bidi controls become visible escapes; letters of any script stay."""
        assert "a\\x1b]0;t\\x07b\\x0d\\x0ac\\x7f\\x9b\\u202e" == printable("a\x1b]0;t\x07b\r\nc\x7f\x9b\u202e")
        assert "été 日本 ok" == printable("été 日本 ok")
        assert "one\\x1b[1m\ntwo" == printable_lines("one\x1b[1m\ntwo")
        assert printable(printable(TITLE)) == printable(TITLE)


@pytest.fixture
def planted(redis_server: RedisServer) -> RedisServer:
    client = redis.Redis(port=redis_server.port)
    _plant(client)
    client.close()
    return redis_server


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--pool", "esc"],
        ["status", "--watch", "--count", "1"],
        ["history", "esc"],
        ["names"],
        ["whereis", "plain"],
        ["jobs", "esc"],
        ["schedules"],
        ["doctor"],
        ["evict", "esc", "nobody"],
    ],
    ids=lambda a: "-".join(x for x in a if x.isprintable()),
)
def test_every_command_escapes_what_it_prints(planted: RedisServer, args: list[str]) -> None:
    """Each command's stdout and stderr: no control character but its own line breaks, and the
    hostile strings shown escaped where the command shows them."""
    done = cli("--redis", planted.url, *args)
    for stream in (done.stdout, done.stderr):
        assert [] == UNSAFE.findall(stream), (args, done.returncode, stream)
    if args[0] == "status":
        assert printable(MEMBER) in done.stdout and printable(TITLE + "node") in done.stdout
        assert "fake-node" in done.stdout and not any(line.startswith("  *  root") for line in done.stdout.splitlines())
    if args[0] in ("names", "whereis"):
        assert printable(MEMBER) in done.stdout
    if args[0] == "history":
        assert printable(COLOUR) in done.stdout


@pytest.mark.parametrize(
    "args", [["status", "--json"], ["history", "esc", "--json"], ["names", "--json"], ["jobs", "esc", "--json"]]
)
def test_json_output_stays_valid_and_exact(planted: RedisServer, args: list[str]) -> None:
    """``--json``: one valid JSON document per line (escapes as JSON escapes), holding the
    strings exactly as Redis holds them."""
    done = cli("--redis", planted.url, *args)
    assert 0 == done.returncode, done.stderr
    assert [] == UNSAFE.findall(done.stdout)
    body = json.dumps(json.loads(done.stdout))
    assert json.dumps(MEMBER)[1:-1] in body or json.dumps(FAKE_ROW)[1:-1] in body or json.dumps(TITLE)[1:-1] in body
