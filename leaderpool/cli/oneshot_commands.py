"""The one-shot commands of ``leaderpool-cli``: ``status``, ``history``, ``resign``, ``evict``,
``forget``, ``doctor``, ``schedules``, ``whereis``, ``names``, ``unregister`` for unique names, and
``singletons``, ``move`` for a pool's singletons.

Each reads its arguments, runs once on a :class:`~leaderpool.console.oneshot.Blocking` client (no
event loop, no log set-up: the library is silent unless configured), prints, and returns its exit
code; what it could not do is a :class:`~leaderpool.console.args.Failure` (exit 1), bad input a
:class:`~leaderpool.console.args.UsageError` (exit 2). :mod:`.commands` picks the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TextIO

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.cli import history, status
from leaderpool.cli.evict import evict
from leaderpool.console.args import (
    EXIT_FAILURE,
    Failure,
    Options,
    UsageError,
    checked_arg,
    name_arg,
    positive_integer,
    seconds,
)
from leaderpool.console.oneshot import Blocking, run
from leaderpool.util.printable import printable_lines


def cmd_status(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pools = [checked_arg("--pool", name_arg("pool"), p) for p in (o.ns.pool or [])]
    for flag, dest in (("--count", "count"), ("--for", "duration"), ("--interval", "interval")):
        if getattr(o.ns, dest) is not None:
            raise UsageError(flag, "only applies with --watch")
    missing = [p for p in sorted(set(pools)) if not run(status.pool_exists(client, p, prefix))]
    if missing:
        raise Failure(status.no_such_pools(missing, prefix))
    found = run(status.read_status(client, pools, prefix))
    shown = found if pools or o.ns.all else [s for s in found if not s.hidden]
    status.print_status(shown, bool(o.ns.json), out, hidden=len(found) - len(shown), foreign=found.foreign)
    return EXIT_FAILURE if any(s.problem for s in shown) else 0  # a pool that could not be read


def cmd_history(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    count = o.get("count", "--count", None, positive_integer, default=20)
    run(status.require_pool(client, pool, prefix))
    rows = history.history_rows(run(PoolStore(client, Keyspace(pool, prefix)).history(count)))
    if o.ns.json:
        out.write(status.json_text({"pool": pool, "transitions": rows}))
    else:
        out.write(history.render(pool, rows) + "\n")
    return 0


def cmd_resign(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli.resign import resign

    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    given: float | None = o.get("timeout", "--timeout", None, seconds, default=None)
    run(status.require_pool(client, pool, prefix))
    out.write(printable_lines(resign(PoolStore(client, Keyspace(pool, prefix)), given)) + "\n")
    return 0


def cmd_evict(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    member = checked_arg("MEMBER", name_arg("member id"), o.ns.member)
    run(status.require_pool(client, pool, prefix))
    out.write(printable_lines(run(evict(PoolStore(client, Keyspace(pool, prefix)), member))) + "\n")
    return 0


def cmd_forget(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli.forget import forget

    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    out.write(printable_lines(forget(client, Keyspace(pool, prefix), force=bool(o.ns.force))) + "\n")
    return 0


def cmd_doctor(client: Blocking, o: Options, prefix: str, out: TextIO, where: str) -> int:
    from leaderpool.cli import doctor
    from leaderpool.cli.doctor_data import check_pool_data

    checks = run(doctor.run_checks(client, prefix))
    checks.append(run(check_pool_data(client, prefix)))  # hostile or broken data in the pools
    if o.ns.json:
        payload = {"redis": where, "checks": [c.__dict__ for c in checks]}
        out.write(json.dumps(payload, separators=(",", ":")) + "\n")
    else:
        out.write(doctor.render(where, checks) + "\n")
    bad = {"fail", "warn"} if o.ns.strict else {"fail"}
    return EXIT_FAILURE if any(c.level in bad for c in checks) else 0


def cmd_schedules(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import schedules

    if o.ns.action == "history":
        return _slot_history(client, o, prefix, out)
    if o.ns.count is not None:
        raise UsageError("--count", "only applies to 'schedules history'")
    if o.ns.action is not None:
        return _pause_or_resume(client, o, prefix, out)
    pools = [checked_arg("--pool", name_arg("pool"), p) for p in (o.ns.pool or [])]
    for pool in pools:
        run(status.require_pool(client, pool, prefix))
    found = schedules.read(client, pools, prefix)
    empty = [p.pool for p in found if not p.schedules]
    if empty:
        raise Failure(f"no schedules in pool {', '.join(empty)} (prefix {prefix})")
    if o.ns.json:
        out.write(json.dumps({"pools": [p.to_json() for p in found]}, separators=(",", ":")) + "\n")
    else:
        out.write(schedules.render(found) + "\n")
    return 0


def _slot_history(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import schedules

    if len(o.ns.target) not in (1, 2):
        raise UsageError("schedules history", "needs POOL and, optionally, NAME (a schedule)")
    pool = checked_arg("POOL", name_arg("pool"), o.ns.target[0])
    name = checked_arg("NAME", name_arg("schedule name"), o.ns.target[1]) if len(o.ns.target) == 2 else ""
    count = checked_arg("--count", positive_integer, o.ns.count) if o.ns.count is not None else 20
    found = schedules.read_slot_log(client, pool, name, count, prefix)
    if not found:
        which = f"schedule {name!r}" if name else "any schedule"
        raise Failure(f"no slot of {which} in pool {pool} has come due (prefix {prefix})")
    if o.ns.json:
        out.write(json.dumps({"pool": pool, "slots": [s.to_json() for s in found]}, separators=(",", ":")) + "\n")
    else:
        out.write(schedules.render_slot_log(pool, found) + "\n")
    return 0


def _pause_or_resume(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.schedules.schedule_store import ScheduleStore

    action = o.ns.action
    if len(o.ns.target) != 2:
        raise UsageError(f"schedules {action}", "needs POOL NAME (the pool and the schedule's name)")
    pool = checked_arg("POOL", name_arg("pool"), o.ns.target[0])
    name = checked_arg("NAME", name_arg("schedule name"), o.ns.target[1])
    store = ScheduleStore(client, Keyspace(pool, prefix))
    if not run(store.set_paused(name, action == "pause", by="leaderpool-cli")):
        raise Failure(f"no schedule {name!r} in pool {pool} (prefix {prefix}): 'leaderpool-cli schedules' lists them")
    if action == "pause":
        out.write(printable_lines(f"paused {name} in pool {pool}: its slots are skipped, whoever leads, until "
                                  f"'leaderpool-cli schedules resume {pool} {name}'") + "\n")  # fmt: skip
    else:
        out.write(printable_lines(f"resumed {name} in pool {pool}: its next slot runs on time") + "\n")
    return 0


def cmd_whereis(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.whereis(client, checked_arg("NAME", name_arg("name"), o.ns.name), prefix, bool(o.ns.json), out)


def cmd_names(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.list_names(client, prefix, bool(o.ns.json), out)


def cmd_unregister(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.unregister(client, checked_arg("NAME", name_arg("name"), o.ns.name), prefix, out)


def cmd_singletons(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import singletons

    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    return singletons.list_singletons(client, pool, prefix, bool(o.ns.json), out)


def cmd_move(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import singletons

    pool = checked_arg("POOL", name_arg("pool"), o.ns.pool)
    name = checked_arg("NAME", name_arg("singleton"), o.ns.name)
    member = checked_arg("MEMBER", name_arg("member id"), o.ns.member)
    timeout = o.get("timeout", "--timeout", None, seconds, default=10.0)
    return singletons.move(client, pool, name, member, prefix, timeout, out)


ONE_SHOT: dict[str, Callable[[Blocking, Options, str, TextIO], int]] = {
    "status": cmd_status,
    "history": cmd_history,
    "resign": cmd_resign,
    "evict": cmd_evict,
    "forget": cmd_forget,
    "schedules": cmd_schedules,
    "whereis": cmd_whereis,
    "names": cmd_names,
    "unregister": cmd_unregister,
    "singletons": cmd_singletons,
    "move": cmd_move,
}
"""Every one-shot command but ``doctor``, which also takes the (redacted) URL it checks."""
