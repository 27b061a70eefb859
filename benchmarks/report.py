"""Markdown from a result file: the full tables (RESULTS.md), the headline (the latest full run's
section of docs/benchmarks.md), and the leaderpool targets, each marked met or missed from the
numbers measured (never assumed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import exec_tree, locks, queued_locks, schedule_drift, semaphores, singletons, singletons_cost
from benchmarks.startup import TARGET_MS

SECTION = "## The latest full run"
"""The section of docs/benchmarks.md that ``python -m benchmarks --docs`` rewrites."""

KEPT = "<!-- Written by hand from here on: the benchmarks keep it when they rewrite this file. -->"
"""In RESULTS.md, the line after which the text is kept as it is when a run rewrites the file
(sections of runs other than the full one, and the runs the documentation quotes)."""


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ms(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ratio(value: Any, base: Any) -> str:
    if value is None or base is None or base <= 0.05:
        return ""
    return f" ({value / base:.0f}x)" if value / base >= 10 else f" ({value / base:.1f}x)"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each leaderpool target, the measured value, and whether it is met (None: not measured)."""
    lp = _get(results, "contenders", "leaderpool") or {}
    ttl = _get(results, "meta", "settings", "ttl")
    scale = results.get("scale") or {}
    out: list[dict[str, Any]] = []

    def add(target: str, value: Any, met: bool | None, unit: str = "") -> None:
        out.append({"target": target, "value": value, "unit": unit, "met": met})

    def check(value: Any, limit: float) -> bool | None:
        return None if value is None else value <= limit

    fe = _lease_path(results) or _get(lp, "failover", "from_expiry_ms")
    add("crash failover from lease expiry p50 <= 2 ms", _get(fe, "p50"), check(_get(fe, "p50"), 2), "ms")
    add("crash failover from lease expiry p99 <= 10 ms", _get(fe, "p99"), check(_get(fe, "p99"), 10), "ms")
    ho = _get(lp, "handoff", "from_signal_ms")
    add("graceful handoff p50 <= 2 ms", _get(ho, "p50"), check(_get(ho, "p50"), 2), "ms")
    add("graceful handoff p99 <= 10 ms", _get(ho, "p99"), check(_get(ho, "p99"), 10), "ms")
    cached = _get(lp, "lookup", "cache", "cached_ns_per_call")
    add("cached leader lookup <= 2 us per call", cached, check(cached, 2000), "ns")
    per_member = _get(lp, "cost", "client_issued_per_member_per_s")
    follower = _get(lp, "cost", "follower_client_per_s")
    beat = None if ttl is None else ttl / 3
    per_beat = None if per_member is None or beat is None else round(per_member * beat, 2)
    follower_beat = None if follower is None or beat is None else round(follower * beat, 2)
    add("about 1 Redis command per member per heartbeat (client-issued, all members)", per_beat,
        check(per_beat, 1.25), "cmd/heartbeat")  # fmt: skip
    add("idle followers cost nothing more (a follower's commands per heartbeat)", follower_beat,
        check(follower_beat, 1.25), "cmd/heartbeat")  # fmt: skip
    if "steady" in scale:
        cpu = _get(scale, "steady", "redis_cpu_pct")
        add(f"{scale['pools']} pools x {scale['members']} members: Redis below 50% of one core", cpu,
            check(cpu, 50), "%")  # fmt: skip
        led = _get(scale, "mass_kill", "all_led_from_kill_s")
        complete = bool(_get(scale, "mass_kill", "all_led_again"))
        limit = scale["ttl_s"] + 1
        add(f"every pool led again within lease + 1 s ({limit:g} s) after a mass kill", led,
            None if led is None else complete and led <= limit, "s")  # fmt: skip
    for key, runs in (results.get("fast_failover") or {}).items():
        fk = _get(runs, "on", "from_kill_ms")
        add(f"fast failover ({key} lease) from SIGKILL p50 <= 5 ms", _get(fk, "p50"), check(_get(fk, "p50"), 5), "ms")
        add(f"fast failover ({key} lease) from SIGKILL p99 <= 20 ms", _get(fk, "p99"), check(_get(fk, "p99"), 20),
            "ms")  # fmt: skip
    moments = _get(lp, "safety", "two_leader_moments")
    for runs in (results.get("fast_failover") or {}).values():
        for run in runs.values():
            found = _get(run, "safety", "two_leader_moments")
            moments = None if moments is None or found is None else moments + found
    add("zero moments with two acting leaders", moments, None if moments is None else moments == 0)
    status = _get(results, "startup", "commands_ms", "status", "p50")
    add(f"leaderpool-cli status (one Redis call) p50 <= {TARGET_MS:.0f} ms", status, check(status, TARGET_MS), "ms")
    if results.get("jobs") and "skipped" not in results["jobs"]:
        from benchmarks.jobs import targets as jobs_targets

        out += jobs_targets(results["jobs"])
    return out


def _lease_path(results: dict[str, Any]) -> dict[str, Any] | None:
    """leaderpool's crash failover after lease expiry at the run's lease, measured with fast failover
    off (with it on, most crashes end long before the lease does)."""
    ttl = _get(results, "meta", "settings", "ttl")
    off = _get(results, "fast_failover", f"{ttl:g}s", "off", "from_expiry_ms") if ttl is not None else None
    return off if off and off.get("n") else None


def fast_failover_markdown(results: dict[str, Any]) -> str:
    """Crash failover from SIGKILL with fast failover on and off, per lease ("" when not run)."""
    ff = results.get("fast_failover") or {}
    if not ff:
        return ""
    rows = [
        "| leaderpool worker, 3 members | lease | crash failover after SIGKILL p50 / p99 / max (ms) | "
        "after lease expiry p50 (ms) | rounds | two-leader moments |",
        "|---|---|---|---|---|---|",
    ]
    for key, runs in ff.items():
        for mode, label in (("on", "fast failover on (default)"), ("off", "--no-fast-failover")):
            r = runs.get(mode) or {}
            k, e = r.get("from_kill_ms") or {}, r.get("from_expiry_ms") or {}
            moments = _get(r, "safety", "two_leader_moments")
            rows.append(f"| {label} | {key} | {_ms(k.get('p50'))} / {_ms(k.get('p99'))} / {_ms(k.get('max'))} | "
                        f"{_ms(e.get('p50'))} | {k.get('n', 0)} | {moments} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def _mark(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


def _lookup_cell(name: str, c: dict[str, Any]) -> str:
    if name == "leaderpool" and _get(c, "lookup", "cache"):
        return f"{_get(c, 'lookup', 'cache', 'cached_ns_per_call'):.0f} ns (cache)"
    p50 = _get(c, "lookup", "redis_read", "per_call_us", "p50")
    return "n/a" if p50 is None else f"{p50:.0f} us (Redis)"


def headline_markdown(results: dict[str, Any]) -> str:
    """One row per contender; alternatives carry their ratio to leaderpool in parentheses."""
    cs = results.get("contenders") or {}
    lp = cs.get("leaderpool") or {}
    ttl = _get(results, "meta", "settings", "ttl")
    rows = [
        f"| contender (lease {ttl:g} s, 3 members) | crash failover after lease expiry p50 / p99 (ms) | "
        "crash failover after SIGKILL p50 / p99 (ms) | graceful handoff p50 / p99 (ms) | leader lookup | "
        "Redis cmd/s per member (sent / incl. Lua) | two-leader moments |",
        "|---|---|---|---|---|---|---|",
    ]
    lease_path = _lease_path(results)
    if lease_path is not None:  # leaderpool's "after lease expiry" is its lease path: fast failover off
        lp = {**lp, "failover": {**(lp.get("failover") or {}), "from_expiry_ms": lease_path}}
        cs = {**cs, "leaderpool": {**cs.get("leaderpool", {}), "failover": lp["failover"]}}
    for name, c in cs.items():
        base = name == "leaderpool"
        cells = [c.get("title", name)]
        columns = (("failover", "from_expiry_ms"), ("failover", "from_kill_ms"), ("handoff", "from_signal_ms"))
        for section, key in columns:
            p50, p99 = _get(c, section, key, "p50"), _get(c, section, key, "p99")
            ref50 = _get(lp, section, key, "p50")
            cells.append(f"{_ms(p50)}{'' if base else _ratio(p50, ref50)} / {_ms(p99)}")
        cost = c.get("cost") or {}
        cells.append(_lookup_cell(name, c))
        cells.append(f"{_ms(cost.get('client_issued_per_member_per_s'), 2)} / "
                     f"{_ms(cost.get('total_incl_lua_per_member_per_s'), 2)}")  # fmt: skip
        cells.append(str(_get(c, "safety", "two_leader_moments")))
        if "error" in c:
            cells[0] += f" (failed: {c['error']})"
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _stats_row(label: str, s: dict[str, Any] | None) -> str:
    s = s or {}
    return f"| {label} | {s.get('n', 0)} | " + " | ".join(_ms(s.get(k), 2) for k in ("p50", "p90", "p99", "max")) + " |"


def results_markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    m, st = meta.get("machine", {}), meta.get("settings", {})
    lines = [
        "# Benchmark results",
        "",
        f"Run `{meta.get('name')}` started {meta.get('started')}, took {meta.get('duration_s')} s.",
        f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores; {m.get('note') or 'not shared'}; "
        f"{m.get('platform')}; Python {m.get('python')}; redis-server {_get(meta, 'redis', 'version')} on loopback "
        f"(notify-keyspace-events `{_get(meta, 'redis', 'notify_keyspace_events')}` for every contender).",
        f"Settings: lease (ttl) {st.get('ttl')} s for every contender, 3 member processes per pool, "
        f"{st.get('rounds')} crash rounds and {st.get('handoff_rounds')} handoff rounds per contender, "
        f"steady windows of {st.get('window')} s; scale test {st.get('scale_pools')} pools x "
        f"{st.get('scale_members')} members at ttl {st.get('scale_ttl')} s. leaderpool ran as "
        f"`python -m {meta.get('leaderpool_impl')}` from commit {str(_get(meta, 'source', 'commit'))[:10]}"
        f"{' plus uncommitted changes in leaderpool/' if _get(meta, 'source', 'leaderpool_dirty') else ''}.",
        "",
        "Times come from each process's own `elected` line (`time.time()`, one machine, one clock). "
        "Lease expiry = the lease key's PEXPIRETIME (Redis 7: the exact instant, in ms, on the same "
        "clock) read right after the SIGKILL (nobody renews a dead holder's lease; PTTL is read before the kill "
        "too). Redis treats a key as expired once its clock in whole ms is past that instant, so up to 1 ms of "
        "every 'after expiry' figure is Redis's own granularity. Percentiles interpolate between ranks; "
        "with 20-30 rounds p99 is close to the max.",
        "",
        "## Headline",
        "",
        headline_markdown(results),
        "## leaderpool targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for t in results.get("targets", []):
        lines.append(f"| {t['target']} | {t['value']} {t['unit']} | {_mark(t['met'])} |")
    lines += ["", "## Crash failover (SIGKILL the leader)", ""]
    lines += ["| contender | measured from | n | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|"]
    for name, c in (results.get("contenders") or {}).items():
        rows = (("from_expiry_ms", "lease expiry"), ("from_kill_ms", "SIGKILL"),
                ("overhead_beyond_ttl_ms", "SIGKILL, minus the ttl (< 0: part of the lease was used)"))  # fmt: skip
        for key, label in rows:
            lines.append(_stats_row(f"{name} | {label}", _get(c, "failover", key)))
    fast = fast_failover_markdown(results)
    if fast:
        lines += ["", "## Crash failover with fast failover on and off (from SIGKILL to the new leader acting)", ""]
        lines += [fast.rstrip("\n")]
    lines += ["", "## Graceful handoff (SIGTERM the leader)", ""]
    lines += ["| contender | measured from | n | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|"]
    for name, c in (results.get("contenders") or {}).items():
        lines.append(_stats_row(f"{name} | SIGTERM", _get(c, "handoff", "from_signal_ms")))
        lines.append(_stats_row(f"{name} | old leader's revoked line", _get(c, "handoff", "from_release_ms")))
    lines += ["", "## Leader lookup from a non-leader", ""]
    lines += ["| contender | call | p50 | p99 |", "|---|---|---|---|"]
    for name, c in (results.get("contenders") or {}).items():
        cache = _get(c, "lookup", "cache")
        if cache:
            lines.append(f"| {name} | `election.leader` (local cache), timeit best of 5 | "
                         f"{cache['cached_ns_per_call']:.0f} ns | |")  # fmt: skip
            fresh = cache["fresh_read_us"]
            lines.append(f"| {name} | `await current_leader(fresh=True)` (one script) | {_ms(fresh['p50'])} us | "
                         f"{_ms(fresh['p99'])} us |")  # fmt: skip
        read = _get(c, "lookup", "redis_read") or {}
        s = read.get("per_call_us") or {}
        lines.append(f"| {name} | {read.get('call')} | {_ms(s.get('p50'))} us | {_ms(s.get('p99'))} us |")
    lines += ["", "## Cost in steady state (3 members, no faults)", ""]
    lines += [
        "INFO commandstats counts the commands run inside Lua scripts as well as the scripts themselves "
        "(checked: one EVAL running SET, GET and PTTL adds 1 to `eval` and 1 to each of the three). "
        "So the client-issued rate comes from a MONITOR window (script-internal commands are marked `lua` "
        "there), attributed to processes by their connections' ports; the total comes from commandstats.",
        "",
        "| contender | client-issued cmd/s per member | incl. Lua cmd/s per member | leader sends cmd/s | "
        "a follower sends cmd/s | Redis CPU % | commands (incl. Lua) per s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in (results.get("contenders") or {}).items():
        k = c.get("cost") or {}
        by = _get(k, "commandstats", "by_command_per_s") or {}
        lines.append(f"| {name} | {_ms(k.get('client_issued_per_member_per_s'), 2)} | "
                     f"{_ms(k.get('total_incl_lua_per_member_per_s'), 2)} | {_ms(k.get('leader_client_per_s'), 2)} | "
                     f"{_ms(k.get('follower_client_per_s'), 2)} | {_ms(k.get('redis_cpu_pct'), 2)} | "
                     + ", ".join(f"{cmd} {v:g}" for cmd, v in by.items()) + " |")  # fmt: skip
    su = results.get("startup") or {}
    if su:
        lines += ["", "## CLI start-up (wall time of a whole command, from a shell)", ""]
        lines += [
            f"{su.get('runs')} runs each of `{su.get('cli')}` against the same redis-server, a pool with a "
            "leader in it; `python -c pass` and `redis-cli GET` for scale.",
            "",
            "| command | n | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, stats in (su.get("commands_ms") or {}).items():
            lines.append(_stats_row(f"`leaderpool-cli {name.replace('_', ' --')}`", stats))
        lines.append(_stats_row("`python -c pass`", su.get("python_startup_ms")))
        if su.get("redis_cli_get_ms"):
            lines.append(_stats_row("`redis-cli GET`", su.get("redis_cli_get_ms")))
    lines += locks.markdown_lines(results.get("locks"))
    lines += semaphores.markdown_lines(results.get("semaphores"))
    lines += queued_locks.markdown_lines(results.get("queued_locks"))
    lines += singletons.markdown_lines(results.get("singletons"))
    lines += singletons_cost.markdown_lines(results.get("singletons_cost"))
    lines += exec_tree.markdown_lines(results.get("exec_tree"))
    drift = results.get("schedule_drift")
    if drift and "error" not in drift:
        lines += ["", "## A periodic singleton across SIGKILLs of its leader (`--every`)", ""]
        lines += [f"- {line}" for line in schedule_drift.table(drift).splitlines()]
    lines += ["", "## Safety (moments with two acting leaders, over every round above)", ""]
    lines += ["| contender | leaderships | two-leader moments | total overlap ms |", "|---|---|---|---|"]
    for name, c in (results.get("contenders") or {}).items():
        s = c.get("safety") or {}
        lines.append(f"| {name} | {s.get('leaderships')} | {s.get('two_leader_moments')} | "
                     f"{s.get('overlap_total_ms')} |")  # fmt: skip
    lines += ["", "## Scale", ""]
    sc = results.get("scale") or {}
    if "steady" in sc:
        mk = sc["mass_kill"]
        lines += [
            f"{sc['pools']} pools x {sc['members']} members (member i of every pool in process i, "
            f"{sc['pools']} AsyncElections on one event loop sharing one client), ttl {sc['ttl_s']} s, "
            f"heartbeat {sc['heartbeat_s']} s; set-up took {sc['setup_s']} s.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| Redis commands/s (incl. Lua) | {sc['steady']['commands_per_s']:.0f} |",
            f"| per member | {sc['redis_commands_per_s_per_member']} |",
            f"| Redis CPU (% of one core) | {sc['steady']['redis_cpu_pct']} |",
            f"| worker CPU, all processes (% of one core) | {sc['worker_cpu_pct_total']} |",
            f"| worker RSS, largest process (MB) | {sc['worker_rss_mb_max']} |",
            f"| pools whose lead moved off process 0 before the kill (lost leases) | "
            f"{sc.get('pools_whose_lead_moved_before_the_kill')} |",
            f"| warnings the workers logged over the test | {sc.get('worker_warnings')} |",
            f"| mass kill: every pool led again after SIGKILL (s) | {mk['all_led_from_kill_s']}"
            f"{'' if mk['all_led_again'] else ' (not all: see the last row)'} |",
            f"| mass kill: after the last lease expired (s) | {mk['all_led_from_last_expiry_s']} |",
            f"| mass kill: per pool from SIGKILL p50 / p99 (s) | {_get(mk, 'per_pool_from_kill_s', 'p50')} / "
            f"{_get(mk, 'per_pool_from_kill_s', 'p99')} |",
            f"| mass kill: per pool from its lease expiry p50 / p99 (ms) | "
            f"{_get(mk, 'per_pool_from_expiry_ms', 'p50')} / {_get(mk, 'per_pool_from_expiry_ms', 'p99')} |",
            f"| during the recovery: Redis cmd/s / Redis CPU % / survivors' CPU % each | "
            f"{_get(mk, 'during', 'redis_commands_per_s')} / {_get(mk, 'during', 'redis_cpu_pct')} / "
            f"{', '.join(str(v) for v in (_get(mk, 'during', 'survivor_cpu_pct') or {}).values())} |",
            f"| pools the killed process led / led again by a survivor / vacant after / still held by it after | "
            f"{mk.get('pools_led_by_killed_process')} / {mk['pools_led_again']} / "
            f"{mk['pools_vacant_after']} / {mk['pools_held_by_killed_process_after']} |",
        ]
    else:
        lines.append(f"Not run: {sc}")
    lines += ["", NOTES]
    fl = results.get("floor") or {}
    lines += ["", "## The floor on this machine", "", "| measure | p50 us | p99 us |", "|---|---|---|"]
    for label, s in (("PING round trip, redis-py", _get(fl, "ping", "redis_py_us")),
                     ("PING round trip, bare socket", _get(fl, "ping", "socket_us")),
                     ("SET sent -> keyspace notification read on another connection",
                      _get(fl, "keyspace_notification", "set_to_message_us"))):  # fmt: skip
        lines.append(f"| {label} | {_ms(_get(s, 'p50'))} | {_ms(_get(s, 'p99'))} |")
    for key, label in (("kill_to_peer_eof_ms", ""), ("kill_to_peer_eof_after_3s_idle_ms", ", idle for 3 s before")):
        death = fl.get(key)
        if death and death.get("n"):  # the floor under fast failover
            lines.append(f"| SIGKILL of a Python process (the worker's imports{label}) -> its TCP peer reads the "
                         f"close | {_ms(death['p50'] * 1000)} | {_ms(death['p99'] * 1000)} |")  # fmt: skip
    if results.get("jobs") and "skipped" not in results["jobs"]:
        from benchmarks.jobs import markdown as jobs_markdown

        lines += ["", jobs_markdown(results["jobs"]).rstrip()]
    return "\n".join(lines) + "\n"


NOTES = """## How each contender learns of a change (what the numbers above come from)

- **leaderpool** (`python -m leaderpool.worker --json-events`, default task): followers arm a timer at the
  leader's lease deadline and subscribe to the leader key's keyspace channel and the pool's events
  channel; a wake-up re-reads the pool with one script, and the first-ranked member claims with another.
  SIGTERM: the worker stops its task, then one script removes the member and deletes the leader key.
- **tooz**: every member polls `run_watchers()` every 0.1 s, which tries the group's leader lock with
  SET NX PX; the leader refreshes it in `heartbeat()`. No lost-leadership callback and no `get_leader` in
  the Redis driver. SIGTERM: `stop()` (leave the group, release the lock).
- **tooz-leaderpool**: the tooz contender's program with the URL `leaderpool://` (leaderpool's tooz driver):
  leaderpool elects and fails over in the background (fast failover included); the application hears
  it is elected at its next `run_watchers()` (every 0.1 s), which is most of the time measured.
  SIGTERM: `stop()` (hands the lead over, leaves the group).
- **python-redis-lock**: waiters block in BLPOP on the lock's signal list for up to `expire` seconds: a
  release (RPUSH) wakes one at once (fast handoff), an expiry wakes nobody, so after a crash a waiter
  retries only when its BLPOP times out (slow, phase-dependent failover). It renews every 2/3 of the
  lease, so less of the lease is left at a random kill (hence its shorter "after SIGKILL").
- **redis-py Lock**: `acquire()` retries SET NX PX every 0.1 s (`sleep`); the leader `reacquire()`s every
  ttl/3. SIGTERM: `release()`; the others notice on their next retry.
- **client-go-style lease**: the leader renews every ttl/3 (steps down after 2/3 of the lease without a
  renewal); candidates try SET NX PX every 2/15 of the lease. SIGTERM: delete the key if still ours.
"""


def _target_text(t: dict[str, Any]) -> str:
    return f"{t['target']}: {t['value']} {t['unit']}".rstrip() + f" ({_mark(t['met'])})"


def docs_section(results: dict[str, Any]) -> str:
    """The latest full run's section of docs/benchmarks.md (no links out of docs/: mkdocs checks them)."""
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    return (
        f"{SECTION}\n\n"
        f"{m.get('cpu_model')}, {m.get('cores')} cores, a shared VM; redis {_get(meta, 'redis', 'version')}; in "
        "parentheses the alternative's time divided by leaderpool's, below 1x the alternative was faster. The "
        "run's date and commit, and its full tables, are in `benchmarks/RESULTS.md`.\n\n"
        + headline_markdown(results)
        + (
            f"\nFast failover (a crashed leader replaced without waiting for its lease):\n\n{ff}"
            if (ff := fast_failover_markdown(results))
            else ""
        )
        + _jobs_headline(results)
        + "\nleaderpool's targets in this run: "
        + "; ".join(_target_text(t) for t in results.get("targets", []))
        + ".\n"
    )


def _jobs_headline(results: dict[str, Any]) -> str:
    """The jobs benchmark's table (leaderpool against RQ and arq), when it ran."""
    if not results.get("jobs") or "skipped" in results["jobs"]:
        return ""
    from benchmarks.jobs import table

    return "\nWork for the leader: jobs against RQ and arq, one consuming worker each on the same server:\n\n" + table(
        results["jobs"]
    )


def update_docs(path: Path, section: str) -> None:
    """Replace (or append) the latest full run's section, leaving every other section as it is.
    Reads the file right before writing: others edit their sections concurrently."""
    text = path.read_text()
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION) + 2)
        new = text[: start + 1] + section + ("" if end < 0 else "\n" + text[end + 1 :])
    path.write_text(new)


def with_kept_text(generated: str, path: Path) -> str:
    """``generated`` for RESULTS.md, followed by what the file holds after the :data:`KEPT` line."""
    old = path.read_text() if path.exists() else ""
    at = old.find(KEPT)
    return generated if at < 0 else generated.rstrip("\n") + "\n\n" + old[at:]
