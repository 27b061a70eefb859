"""The demo's jobs experiment, after the seed's ``tracked_work``: jobs submitted while the
leader is SIGKILLed all run; the few the killed leader had under way run again (at-least-once),
under the next leader; then a call, a call to a named member and a multicall."""

from __future__ import annotations

import signal
import threading
import time

from leaderpool.cli.demo.narration import DemoFailed, NamedEvent, Narrator
from leaderpool.testing.processes import JsonEvent

TRACKED_JOBS = 300
"""How many jobs the experiment submits (about 5 ms of work each)."""


def tracked_work(demo: Narrator, leader: str) -> None:
    """The seed's tracked_work: jobs submitted while the leader is SIGKILLed all run; the few
    the killed leader had under way run again (at-least-once), under the next leader."""
    from leaderpool import PoolClient

    demo.step(f"7. tracked_work: {TRACKED_JOBS} jobs submitted while the leader ({leader}) is SIGKILLed")
    mark = demo.events.mark()
    submitted: list[str] = []
    with PoolClient(demo.c.pool, demo.c.url, prefix=demo.c.prefix) as client:

        def submit_all() -> None:
            for i in range(TRACKED_JOBS):
                submitted.append(client.submit({"n": i, "ms": 5}))
                time.sleep(0.004)

        submitter = threading.Thread(target=submit_all, name="demo-submitter", daemon=True)
        submitter.start()
        counted = [0]

        def enough(item: NamedEvent) -> bool:  # sees each event once, in order
            counted[0] += item[0] == leader and item[1].get("event") == "job_ran"
            return counted[0] >= TRACKED_JOBS // 5

        if demo.events.first(enough, demo.patience, mark) is None:
            raise DemoFailed(f"{leader} did not run the jobs")
        killed = demo.c[leader].signal(signal.SIGKILL)
        before = len(demo.since(mark, "job_ran"))
        demo.say(f"{leader} had run {before} job(s) when it was SIGKILLed; submitting goes on")
        submitter.join(demo.patience)

        def all_ran() -> bool:
            return set(submitted) <= {e["job"] for _, e in demo.since(mark, "job_ran")}

        done_at = demo.until(lambda: len(submitted) == TRACKED_JOBS and all_ran())
        runs = demo.since(mark, "job_ran")
        by_job: dict[str, list[tuple[str, JsonEvent]]] = {}
        for name, event in runs:
            by_job.setdefault(event["job"], []).append((name, event))
        twice = sorted(j for j, rs in by_job.items() if len(rs) > 1)
        others = sorted({n for n, _ in runs if n != leader})
        demo.say(
            f"all {TRACKED_JOBS} jobs ran: {len(runs)} runs, by {leader} (before the kill) and "
            f"{', '.join(others) or 'nobody'} (after)"
            if done_at
            else "not every job ran"
        )
        after = [e["t"] for n, e in runs if n != leader]
        if after:
            demo.say(f"the next leader ran its first job {min(after) - killed:.2f} s after the kill "
                     f"(the lease is {demo.c.ttl:g} s)")  # fmt: skip
        for job in twice:
            seen = ", ".join(f"{n} (delivery {e['delivery']}, term {e['term']})" for n, e in by_job[job])
            demo.say(f"ran twice: job {job}: {seen}")
        demo.say(f"{len(twice)} duplicate(s): jobs the killed leader had under way, run again by the next leader")
        ok = bool(done_at) and all(by_job[j][0][0] == leader for j in twice)
        demo.record(
            "tracked_work across SIGKILL", "every job runs; duplicates only of jobs in flight",
            f"{len(by_job)}/{TRACKED_JOBS} ran, {len(twice)} twice", ok,
        )  # fmt: skip
        new = client.call("who", timeout=demo.patience)["member"]
        target = next(n for n in "abc" if n != new)
        reply = client.call({"ms": 1}, timeout=demo.patience, member=target)
        result = client.multicall("ping", timeout=2.0)
        demo.say(f"call -> the leader {new}; call(member={target!r}) -> {reply['member']}; "
                 f"multicall -> {sorted(result.replies)} answered, missing {result.missing}")  # fmt: skip
        demo.record(
            "calls", "leader, named member and all answer", f"{new}, {reply['member']}, {len(result.replies)}",
            reply["member"] == target and not result.missing,
        )  # fmt: skip
