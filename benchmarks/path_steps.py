"""Where a kind hand-over's and a crash failover's time goes, step by step, A/B against another
checkout: ``python -m benchmarks.path_steps [--base-python /work/wt-paths-base/.venv/bin/python]``.

Each side is a pool of three worker processes (:mod:`benchmarks.traced_worker`, so every step
writes a CLOCK_MONOTONIC probe line) started with that side's interpreter, so with its
``leaderpool``; a third series is python-redis-lock's pool, and a fourth the floor
(:mod:`benchmarks.floor_pipeline`: SIGTERM -> one PUBLISH from the handler -> a subscriber
writes a line). Blocks of rounds are interleaved (floor, this side, the base, python-redis-lock,
again and again), on one redis-server, so a busy moment of the shared machine falls on all.
A hand-over round is a SIGTERM of the leader (``PoolRun.handoff_round``); a crash round a
SIGKILL (``PoolRun.crash_round``); both are timed to the new leader's ``elected`` line, as
``python -m benchmarks`` does, and each probe as an offset from the signal. Writes a JSON file
and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks.fastfail import death_floor
from benchmarks.registry import ALTERNATIVES, LEADERPOOL, Contender
from benchmarks.results_file import RESULTS
from benchmarks.runner import KEYSPACE_FLAGS
from benchmarks.scenarios import PoolRun, progress
from benchmarks.stats import summary
from leaderpool.backend.pool_scripts import PoolScripts
from leaderpool.backend.script_registry import Lua
from leaderpool.testing import processes
from leaderpool.testing.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
SLOWLOG_LEN = 20_000
SIGNALLED: dict[str, int] = {}
"""child name -> CLOCK_MONOTONIC ns just before its last signal."""


@dataclasses.dataclass(frozen=True)
class Side(Contender):
    python: str = sys.executable

    def argv(self, url: str, pool: str, member: str, ttl: float) -> list[str]:
        return [self.python, str(HERE / "traced_worker.py"), "--redis", url, "--pool", pool, "--member-id",
                member, "--ttl", repr(ttl), "--json-events", *self.extra_args]  # fmt: skip


class TracedRun(PoolRun):
    """A pool whose processes' probe lines are kept: ``traces[proc]`` = [(name, ns)]."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.traces: dict[str, list[tuple[str, int]]] = {}

    def _on_line(self, label: str, line: str) -> None:
        if line.startswith('{"trace"'):
            data = json.loads(line)
            self.traces.setdefault(label, []).append((data["trace"], data["ns"]))
            return
        super()._on_line(label, line)


def _record_signal(original: Any) -> Any:
    def signal_child(self: processes.Child, sig: int) -> float:
        SIGNALLED[self.name] = time.monotonic_ns()
        return float(original(self, sig))

    return signal_child


def _first(trace: list[tuple[str, int]], name: str, after: int, before: int | None = None) -> int | None:
    return next((ns for n, ns in trace if n == name and ns >= after and (before is None or ns <= before)), None)


HANDOFF_LEADER = ("sig_handler.begin", "core_shutdown.begin", "step_down.begin", "on_revoked.begin",
                  "task_halt.begin", "task_stop.begin", "task_stop.end", "task_halt.end", "acknowledged.end",
                  "leave_script.begin", "batch_send.begin", "leave_script.end")  # fmt: skip
HANDOFF_SUCCESSOR = ("watcher_deliver.begin", "on_message.begin", "accept_handoff.begin", "announce.begin",
                     "announce.end", "accept_handoff.end", "on_message.end", "watcher_deliver.end", "turn.begin",
                     "callback.begin", "on_elected.begin", "elected_line.end")  # fmt: skip
CRASH_FOLLOWER = ("link_closed.begin", "on_trigger.begin", "turn.begin", "claim.begin", "batch_send.begin",
                  "still_subscribed.begin", "bury_script.end", "announce.begin", "claim.end", "callback.begin",
                  "on_elected.begin",
                  "elected_line.end")  # fmt: skip


def handoff_steps(run: TracedRun, r: dict[str, Any]) -> dict[str, float]:
    """Each probe's offset from the SIGTERM (ms), this round."""
    t0 = SIGNALLED[r["stopped"]]
    old, new = run.traces.get(r["stopped"], []), run.traces.get(r["new_leader"], [])
    out: dict[str, float] = {}
    for name in HANDOFF_LEADER:
        ns = _first(old, name, t0)
        if ns is not None:
            out[f"leader {name}"] = (ns - t0) / 1e6
    elected = _first(new, "elected_line.end", t0)
    accept = _first(new, "accept_handoff.begin", t0)
    for name in HANDOFF_SUCCESSOR:
        ns = _first(new, name, t0, elected)
        if name in ("watcher_deliver.begin", "on_message.begin") and accept is not None:  # the grant's delivery
            ns = max((t for n, t in new if n == name and t0 <= t <= accept), default=None)
        elif name.endswith(".end") or name in ("turn.begin", "callback.begin"):
            ns = _first(new, name, accept or t0, elected)
        if ns is not None:
            out[f"successor {name}"] = (ns - t0) / 1e6
    return out


def crash_steps(run: TracedRun, r: dict[str, Any]) -> dict[str, float]:
    t0 = SIGNALLED[r["killed"]]
    new = run.traces.get(r["new_leader"], [])
    out: dict[str, float] = {}
    elected = _first(new, "elected_line.end", t0)
    for name in CRASH_FOLLOWER:
        ns = _first(new, name, t0, elected)
        if ns is not None:
            out[name] = (ns - t0) / 1e6
    if (closed := _first(new, "link_closed.begin", t0)) is not None and elected is not None:
        out["read_close_to_elected"] = (elected - closed) / 1e6
    return out


class Floor:
    """The two floor processes, and one round: SIGTERM -> the subscriber's line (ms)."""

    def __init__(self, host: str, port: int) -> None:
        script, channel = str(HERE / "floor_pipeline.py"), "bench:floor:handover"
        self.sub = subprocess.Popen([sys.executable, script, "sub", host, str(port), channel], stdout=subprocess.PIPE)
        self._line(self.sub, 10)
        self.pub = subprocess.Popen([sys.executable, script, "pub", host, str(port), channel], stdout=subprocess.PIPE)
        self._line(self.pub, 10)

    @staticmethod
    def _line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("floor pipeline: no line")
        return dict(json.loads(os.read(proc.stdout.fileno(), 256).splitlines()[0]))

    def round(self) -> float:
        time.sleep(0.3)  # idle, as a leader is between beats
        sent = time.monotonic_ns()
        self.pub.send_signal(signal.SIGTERM)
        return (int(self._line(self.sub, 5)["ns"]) - sent) / 1e6

    def close(self) -> None:
        for p in (self.pub, self.sub):
            p.kill()
            p.wait()


def scripts_us(admin: redis.Redis, into: dict[str, list[int]]) -> None:
    """The time inside Redis of each script call since the last call (SLOWLOG, every command
    logged), by script name (its SHA's, from this checkout's registry), then cleared."""
    scripts = PoolScripts.on(admin)
    names = {getattr(scripts, n).sha: n for n, v in vars(PoolScripts).items() if isinstance(v, Lua)}
    for entry in admin.slowlog_get(SLOWLOG_LEN):
        command = entry["command"].split()
        if command and command[0].upper() in (b"EVALSHA", "EVALSHA") and len(command) > 1:
            sha = command[1].decode() if isinstance(command[1], bytes) else command[1]
            into.setdefault(names.get(sha, sha[:8]), []).append(int(entry["duration"]))
    admin.slowlog_reset()


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.path_steps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--base-python", help="the other checkout's interpreter (its venv's python); none: no A/B")
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--handoffs", type=int, default=5, help="hand-over rounds per block and side")
    p.add_argument("--crashes", type=int, default=5, help="crash rounds per block and side")
    p.add_argument("--floor", type=int, default=5, help="floor rounds per block")
    p.add_argument("--ttl", type=float, default=2.0)
    p.add_argument("--no-peer", action="store_true", help="leave python-redis-lock out")
    p.add_argument("--port", type=int, help="the redis-server's port (a free one)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default=time.strftime("path-steps-%Y%m%d-%H%M%S"))
    args = p.parse_args(argv)
    processes.Child.signal = _record_signal(processes.Child.signal)  # type: ignore[method-assign]
    sides = {"branch": Side(**{**dataclasses.asdict(LEADERPOOL), "name": "branch"})}
    if args.base_python:
        sides["base"] = Side(**{**dataclasses.asdict(LEADERPOOL), "name": "base", "python": args.base_python})
    prl = next(c for c in ALTERNATIVES if c.name == "python-redis-lock")
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(args.out)}, "loads": []}
    samples: dict[str, list[Any]] = {"floor": []}
    runs: dict[str, TracedRun | PoolRun] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / f"{args.name}.log", "w")  # noqa: SIM115  # closed below
    with RedisServer(port=args.port, extra_args=("--notify-keyspace-events", KEYSPACE_FLAGS)) as server:
        results["redis"] = server.version
        admin = redis.Redis.from_url(server.url)
        admin.config_set("slowlog-log-slower-than", 0)  # every command, with its time inside Redis
        admin.config_set("slowlog-max-len", SLOWLOG_LEN)
        floor = Floor("127.0.0.1", server.port)
        try:
            for name, side in sides.items():
                runs[name] = TracedRun(side, server.url, f"steps-{name}", args.ttl, 3, log)
            if not args.no_peer:
                runs["python-redis-lock"] = PoolRun(prl, server.url, "steps-prl", float(int(args.ttl)), 3, log)
            for run in runs.values():
                run.start()
            for block in range(args.blocks):
                results["loads"].append(load())
                samples["floor"] += [floor.round() for _ in range(args.floor)]
                if args.crashes:  # the crash's floor: SIGKILL -> the peer reads the close
                    death = death_floor(max(2, args.floor // 2))["kill_to_peer_eof_ms"]
                    samples.setdefault("death_floor", []).append(death)
                for name, run in runs.items():
                    for _ in range(args.handoffs):
                        r = run.handoff_round()
                        if r["ok"] and isinstance(run, TracedRun):
                            r["steps"] = handoff_steps(run, r)
                        samples.setdefault(f"{name} handoff", []).append(r)
                    if not isinstance(run, TracedRun):
                        continue
                    for _ in range(args.crashes):
                        r = run.crash_round()
                        if r["ok"]:
                            r["steps"] = crash_steps(run, r)
                        samples.setdefault(f"{name} crash", []).append(r)
                    run.traces.clear()
                    scripts_us(admin, results.setdefault("redis_us", {}))
                progress(f"block {block + 1}/{args.blocks} done, load {load()}")
            results["safety"] = {name: run.safety() for name, run in runs.items()}
        finally:
            for run in runs.values():
                run.close()
            floor.close()
            log.close()
    results["samples"] = samples
    results["summary"] = summarize(samples)
    results["summary"]["redis_us"] = {n: summary(v, digits=1) for n, v in results.get("redis_us", {}).items()}
    results["loads"].append(load())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


def step_gaps(steps: dict[str, float], crash: bool) -> dict[str, float]:
    """One round's time from each probe to the next one on the path (ms), in path order: the
    leader's steps to its script, then the successor's from that script on (the leader's reply
    is timed from its script apart)."""
    order = ["signal", *(CRASH_FOLLOWER if crash else (
        *(f"leader {n}" for n in HANDOFF_LEADER if n != "leave_script.end"),
        *(f"successor {n}" for n in HANDOFF_SUCCESSOR)))]  # fmt: skip
    at = {"signal": 0.0, **steps}
    out, previous = {}, "signal"
    for name in order[1:]:
        if name in at:
            out[f"{previous} -> {name}"] = at[name] - at[previous]
            previous = name
    if not crash and "leader leave_script.end" in at and "leader leave_script.begin" in at:
        out["leader leave_script round trip"] = at["leader leave_script.end"] - at["leader leave_script.begin"]
    return out


def summarize(samples: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"floor_ms": summary(samples["floor"], digits=3)}
    if samples.get("death_floor"):  # each block's p50 (its samples are not kept one by one)
        out["death_floor_block_p50_ms"] = summary([d["p50"] for d in samples["death_floor"]], digits=3)
    for series, rounds in samples.items():
        if series in ("floor", "death_floor"):
            continue
        ok = [r for r in rounds if r["ok"]]
        key = "from_signal_s" if series.endswith("handoff") else "from_kill_s"
        entry: dict[str, Any] = {"ms": summary([r[key] for r in ok], scale=1e3), "failed": len(rounds) - len(ok)}
        steps: dict[str, list[float]] = {}
        for r in ok:
            for step, ms in r.get("steps", {}).items():
                steps.setdefault(step, []).append(ms)
        entry["step_p50_ms"] = dict(
            sorted(((s, round(statistics.median(v), 3)) for s, v in steps.items()), key=lambda kv: kv[1])
        )
        entry["step_n"] = {s: len(v) for s, v in steps.items()}
        gaps: dict[str, list[float]] = {}
        for r in ok:
            for step, ms in step_gaps(r.get("steps", {}), series.endswith("crash")).items():
                gaps.setdefault(step, []).append(ms)
        entry["gap_p50_ms"] = {s: round(statistics.median(v), 3) for s, v in gaps.items()}
        entry["gap_n"] = {s: len(v) for s, v in gaps.items()}
        if series.endswith("crash"):
            entry["still_subscribed_rounds"] = sum(1 for r in ok if "still_subscribed.begin" in r.get("steps", {}))
        out[series] = entry
    return out


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    lines = [f"redis {results['redis']}; load (1/5 min) per block: {', '.join(results['loads'])}", "",
             "| series | n | p50 | p90 | p99 | min |", "|---|---|---|---|---|---|"]  # fmt: skip
    f = s["floor_ms"]
    lines.append(f"| floor (SIGTERM -> PUBLISH -> subscriber's line) | {f['n']} | {f['p50']} | {f['p90']} | "
                 f"{f['p99']} | {f['min']} |")  # fmt: skip
    if "death_floor_block_p50_ms" in s:
        d = s["death_floor_block_p50_ms"]
        lines.append(f"| death floor (SIGKILL -> peer reads the close), p50 of each block | {d['n']} | {d['p50']} | "
                     f"{d['p90']} | {d['p99']} | {d['min']} |")  # fmt: skip
    for series, e in s.items():
        if series in ("floor_ms", "redis_us", "death_floor_block_p50_ms"):
            continue
        m = e["ms"]
        lines.append(f"| {series} | {m['n']} | {m['p50']} | {m['p90']} | {m['p99']} | {m['min']} |")
    lines += ["", "time inside Redis per script call (us, SLOWLOG): " + "; ".join(
        f"{n} p50 {v['p50']} p99 {v['p99']} (n={v['n']})" for n, v in s.get("redis_us", {}).items())]  # fmt: skip
    for series, e in s.items():
        if series in ("floor_ms", "redis_us", "death_floor_block_p50_ms") or not e.get("step_p50_ms"):
            continue
        lines += ["", f"{series}: each probe's median offset from the signal (ms)", ""]
        lines += [f"- {step}: {ms} (n={e['step_n'][step]})" for step, ms in e["step_p50_ms"].items()]
        lines += ["", f"{series}: median time between consecutive probes, per round (ms)", ""]
        lines += [f"- {step}: {ms} (n={e['gap_n'][step]})" for step, ms in e["gap_p50_ms"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
