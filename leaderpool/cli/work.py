"""``leaderpool-cli`` commands for a pool's work: ``submit``, ``call``, ``multicall``, ``jobs``,
``requeue`` and ``drop`` (dead letters).

A payload is one JSON argument; one that is not JSON, or above the size limit, is one line and
exit 2 before anything is sent. ``call`` exits 1 with one line on a timeout, when nobody can take
the call, or when the handler failed. ``submit``, ``jobs``, ``requeue`` and ``drop`` are one-shot
(a blocking client, no event loop); ``call`` and ``multicall`` wait on asyncio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from leaderpool.backend.keys import Keyspace
from leaderpool.console.args import Failure, Options, UsageError, seconds
from leaderpool.util.naming import validate_name

DEFAULT_TIMEOUT_S = 5.0


def add_parsers(sub: Any, common: Any) -> None:
    """The work commands' parsers (``common(parser, top=False)`` adds --redis and --prefix)."""
    s = sub.add_parser("submit", help="append a job to a pool's stream; prints its id")
    common(s, top=False)
    s.add_argument("pool", metavar="POOL")
    s.add_argument("payload", metavar="JSON")
    s.add_argument(
        "--create", action="store_true", help="submit to a pool Redis holds no key of yet (its members join later)"
    )

    c = sub.add_parser("call", help="run a job on the leader (or --member) and print its reply")
    common(c, top=False)
    c.add_argument("pool", metavar="POOL")
    c.add_argument("payload", metavar="JSON")
    c.add_argument("--member", metavar="ID", help="call this member's handler instead of the leader's")
    c.add_argument("--timeout", metavar="SECONDS", help=f"how long to wait for the reply ({DEFAULT_TIMEOUT_S:g})")

    m = sub.add_parser("multicall", help="ask every live member's handler; print their replies and who was silent")
    common(m, top=False)
    m.add_argument("pool", metavar="POOL")
    m.add_argument("payload", metavar="JSON")
    m.add_argument("--timeout", metavar="SECONDS", help=f"how long to wait for the replies ({DEFAULT_TIMEOUT_S:g})")

    j = sub.add_parser("jobs", help="a pool's backlog: pending jobs (consumer, age), waiting jobs, dead letters")
    common(j, top=False)
    j.add_argument("pool", metavar="POOL")
    j.add_argument("--json", action="store_true", help="print JSON")

    for name, verb in (("requeue", "submit dead letters again"), ("drop", "delete dead letters")):
        d = sub.add_parser(name, help=f"{verb} (the ids `jobs` lists, or --all)")
        common(d, top=False)
        d.add_argument("pool", metavar="POOL")
        d.add_argument("ids", metavar="ID", nargs="*")
        d.add_argument("--all", action="store_true", help="every dead letter of the pool")


COMMANDS = ("submit", "call", "multicall", "jobs", "requeue", "drop")


def _payload(raw: str) -> Any:
    from leaderpool.jobs.jobs_config import DEFAULT_MAX_PAYLOAD_BYTES
    from leaderpool.jobs.wire import encode

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError("JSON", f"is not JSON ({exc}): {raw[:60]!r}") from None
    try:
        encode(value, DEFAULT_MAX_PAYLOAD_BYTES)
    except ValueError as exc:  # PayloadError
        raise UsageError("JSON", str(exc)) from None
    return value


def _sync_client(url: str, timeout_s: float = 10.0) -> Any:
    from leaderpool.backend.connect import blocking_client  # Sentinel and Cluster URLs too

    return blocking_client(url, socket_connect_timeout=5, socket_timeout=timeout_s)


def run_command(ns: argparse.Namespace, o: Options, url: str, pool: str, prefix: str, out: TextIO) -> int:
    """Run one work command (the pool name already checked)."""
    keys = Keyspace(pool, prefix)
    if getattr(ns, "member", None) is not None:
        try:
            validate_name("member id", ns.member)
        except ValueError as exc:
            raise UsageError("--member", str(exc)) from None
    if ns.command in ("submit", "call", "multicall"):
        payload = _payload(ns.payload)
        timeout = o.get("timeout", "--timeout", None, seconds, default=DEFAULT_TIMEOUT_S)
        if ns.command == "submit":
            return _submit(url, keys, payload, out, create=bool(ns.create))
        _require_pool(url, keys)
        return _wait_for_replies(ns, url, keys, payload, timeout, out)
    if ns.command in ("requeue", "drop"):
        if bool(ns.ids) == bool(ns.all):
            raise UsageError("ID", "give the dead letters' ids, or --all (not both)")
        return _dead_letters(ns.command, url, keys, list(ns.ids), out)
    return _jobs(url, keys, bool(ns.json), out)


def _require_pool(url: str, keys: Keyspace, hint: str = "") -> None:
    """Every work command's first step: a pool Redis holds no key of is one line and exit 1
    (the rule of every command that takes a pool; ``submit --create`` is the one exception)."""
    from leaderpool.cli.status import require_pool
    from leaderpool.console.oneshot import Blocking, run

    client = _sync_client(url)
    try:
        run(require_pool(Blocking(client), keys.pool, keys.prefix, hint))
    finally:
        client.close()


def _submit(url: str, keys: Keyspace, payload: Any, out: TextIO, *, create: bool) -> int:
    from leaderpool.cli.status import require_pool
    from leaderpool.console.oneshot import Blocking, run
    from leaderpool.jobs.calls import Calls

    client = _sync_client(url)
    try:
        if not create:  # a typo must not make a stream nobody will ever run
            run(require_pool(Blocking(client), keys.pool, keys.prefix, "; submit --create to a pool yet to start"))
        job_id = run(Calls(Blocking(client), keys).submit(payload))
    finally:
        client.close()
    out.write(job_id + "\n")
    return 0


def _wait_for_replies(
    ns: argparse.Namespace, url: str, keys: Keyspace, payload: Any, timeout: float, out: TextIO
) -> int:
    import asyncio

    from leaderpool.backend.clients import async_client
    from leaderpool.jobs.calls import Calls

    async def go() -> int:
        client = async_client(url, socket_connect_timeout=5, socket_timeout=timeout + 5)
        try:
            calls = Calls(client, keys)
            if ns.command == "call":
                reply = await calls.call(payload, timeout, member=ns.member)
                out.write(json.dumps(reply) + "\n")
                return 0
            result = await calls.multicall(payload, timeout)
            if not result.members:
                raise Failure(f"pool {keys.pool}: no live member runs a handler, so nobody was asked")
            out.write(
                json.dumps({"replies": result.replies, "errors": result.errors, "missing": result.missing}) + "\n"
            )
            if result.missing or result.errors:
                say = [f"{len(result.errors)} failed"] if result.errors else []
                say += [f"{len(result.missing)} did not answer in {timeout:g} s"] if result.missing else []
                sys.stderr.write(f"leaderpool-cli: multicall: of {len(result.members)} member(s), {', '.join(say)}\n")
                return 1
            return 0
        finally:
            await client.aclose()

    return asyncio.run(go())


def _jobs(url: str, keys: Keyspace, as_json: bool, out: TextIO) -> int:
    from leaderpool.cli.status import clock_text, require_pool, seconds_text, table
    from leaderpool.console.oneshot import Blocking, run
    from leaderpool.jobs.job_store import JobStore

    client = _sync_client(url)
    try:
        run(require_pool(Blocking(client), keys.pool, keys.prefix))
        store = JobStore(Blocking(client), keys)
        backlog = run(store.backlog(list_pending=100))
        dead = run(store.dead_letters(100))
    finally:
        client.close()
    now_ms = int(time.time() * 1000)
    if as_json:
        body = {
            "pool": keys.pool,
            "jobs": backlog.jobs,
            "waiting": backlog.waiting,
            "pending": [
                {"id": p.job_id, "consumer": p.consumer, "idle_ms": p.idle_ms, "deliveries": p.deliveries,
                 "age_ms": max(now_ms - _id_ms(p.job_id), 0)}
                for p in backlog.listed
            ],
            "pending_count": backlog.pending,
            "dead": [
                {"id": i, "job": f.get("job", ""), "payload": _loads(f.get("p", "null")), "error": f.get("error", ""),
                 "deliveries": int(f.get("deliveries", "0") or 0)}
                for i, f in dead
            ],
            "dead_count": backlog.dead,
        }  # fmt: skip
        out.write(json.dumps(body, separators=(",", ":")) + "\n")
        return 0
    lines = [
        f"pool {keys.pool}: {backlog.jobs} unfinished job(s): {backlog.pending} pending (delivered, not "
        f"acknowledged), {backlog.waiting} waiting; {backlog.dead} dead letter(s)"
    ]
    if backlog.listed:
        rows = [["PENDING", "CONSUMER", "AGE", "IDLE", "DELIVERIES"]]
        for p in backlog.listed:
            age = seconds_text(max(now_ms - _id_ms(p.job_id), 0))
            rows.append([p.job_id, p.consumer, age, seconds_text(p.idle_ms), str(p.deliveries)])
        lines += ["  " + line for line in table(rows)]
    if dead:
        rows = [["DEAD LETTER", "JOB", "AT", "DELIVERIES", "ERROR"]]
        for i, f in dead:
            rows.append([i, f.get("job", ""), clock_text(_id_ms(i)), f.get("deliveries", ""), f.get("error", "")])
        lines += ["  " + line for line in table(rows)]
    out.write("\n".join(lines) + "\n")
    return 0


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0] or 0)


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _dead_letters(command: str, url: str, keys: Keyspace, ids: Sequence[str], out: TextIO) -> int:
    from leaderpool.cli.status import require_pool
    from leaderpool.console.oneshot import Blocking, run
    from leaderpool.jobs.job_store import JobStore
    from leaderpool.jobs.jobs_config import DEFAULT_MAX_BACKLOG

    client = _sync_client(url)
    try:
        run(require_pool(Blocking(client), keys.pool, keys.prefix))
        store = JobStore(Blocking(client), keys)
        if command == "requeue":  # under the backlog's cap, as `submit` is
            count, left = run(store.requeue(ids, DEFAULT_MAX_BACKLOG))
        else:
            count, left = run(store.drop(ids)), 0
    finally:
        client.close()
    if left:
        raise Failure(
            f"pool {keys.pool}: requeued {count} dead letter(s); {left} left in the dead letters: the job "
            f"stream is at its cap of {DEFAULT_MAX_BACKLOG} unfinished jobs (requeue again once it drains)"
        )
    if ids and count < len(ids):
        raise Failure(
            f"pool {keys.pool}: {len(ids) - count} of the ids given are not dead letters ({count} {command}d)"
        )
    verb = "requeued" if command == "requeue" else "dropped"
    out.write(f"pool {keys.pool}: {verb} {count} dead letter(s)\n")
    return 0
