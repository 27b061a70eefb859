"""The demo's experiments, after the seed's: the pool forms, the leader is hard-killed (replaced
in milliseconds by fast failover) and restarted, a follower is hard-killed and restarted, the
leader shuts down kindly, a higher-priority member takes over, and jobs run across a SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

from leaderpool.backend.clients import async_client
from leaderpool.cli import status
from leaderpool.cli.demo.narration import DemoFailed, Narrator
from leaderpool.cli.demo.tracked_work import tracked_work


class Demo(Narrator):
    """The experiments, each narrated and recorded; :meth:`run` plays them in the seed's order."""

    def form(self) -> str:
        self.step("1. Three workers start and form the pool")
        mark = self.events.mark()
        for name in "abc":  # a is the oldest member, then b, then c
            try:
                self.c.start(name).wait_for(lambda e: True, self.patience)  # its first event: it has joined
            except TimeoutError:
                raise DemoFailed(f"{name} printed no event: it never joined the pool") from None
        self.say("started a, b and c in turn, each once the one before had joined the pool")
        self.say("(python -m leaderpool.worker ... --takeover --json-events)")
        got = self.elected(mark)
        if got is None:
            raise DemoFailed("no leader was elected")
        name, event = got
        took = event["t"] - self.c[name].started
        for other in "abc":
            if self.sees(other, name, mark) is None:
                raise DemoFailed(f"{other} never saw {name} as the leader")
        self.say(f"{name} was elected, term {event['term']}, {took:.2f} s after its process started")
        self.say(f"a, b and c all report {name} as the leader")
        self.record("pool forms", "the oldest (a) leads", f"{name} leads term {event['term']}", name == "a")
        return name

    def kill_leader(self, leader: str) -> str:
        self.step(f"2. Hard kill of the leader (SIGKILL {leader})")
        mark = self.events.mark()
        value, pttl = self.leader()
        killed = self.c[leader].signal(signal.SIGKILL)
        expires = killed + max(pttl, 0) / 1000
        self.say(f"killed {leader} (term {value.term if value else '?'}); its lease had {pttl / 1000:.2f} s left")
        got = self.elected(mark, exclude=leader)
        if got is None:
            raise DemoFailed("no member took over after the kill")
        name, event = got
        failover, beyond = event["t"] - killed, event["t"] - expires
        # fast failover: b held a connection to a's liveness endpoint; it closed when a died, and
        # Redis confirmed a's registered connection gone, so b did not wait for the lease
        self.say(
            f"{name} was elected, term {event['term']}: {failover * 1000:.1f} ms after the kill, "
            f"{-beyond:.2f} s before the lease would have run out (fast failover: {leader}'s liveness "
            "connection closed and Redis confirmed its connection gone)"
            if beyond < 0
            else f"{name} was elected, term {event['term']}: {failover:.2f} s after the kill, "
            f"{beyond:.3f} s after the lease ran out"
        )
        ok = name == "b" and beyond < 0
        self.record(
            "SIGKILL the leader", f"b takes over in ms, not after the lease ({self.c.ttl:g} s)",
            f"{name} after {failover * 1000:.0f} ms ({beyond * 1000:+.0f} ms vs lease end)", ok,
        )  # fmt: skip
        self.failover = failover
        self.c[leader].proc.wait(5)
        return name

    def restart(self, name: str, leader: str, title: str) -> None:
        self.step(title)
        mark = self.events.mark()
        before, _ = self.leader()
        worker = self.c.start(name)
        seen = self.sees(name, leader, mark)
        if seen is None:
            raise DemoFailed(f"restarted {name} never saw {leader} as the leader")
        took = seen[1]["t"] - worker.started
        time.sleep(min(self.c.ttl, 1.0))  # give it a chance to (wrongly) take the lead
        after, _ = self.leader()
        elected = self.since(mark, "elected")
        self.say(f"{name} rejoined {took:.2f} s after it started and sees {leader} as the leader")
        ok = not elected and before == after
        self.record(
            f"restart {name}", "rejoins as a follower; no election",
            f"follower; {leader} still leads term {after.term if after else '?'}", ok,
        )  # fmt: skip

    def kill_follower(self, name: str, leader: str) -> None:
        self.step(f"4. Hard kill of a non-leader (SIGKILL {name})")
        mark = self.events.mark()
        before, _ = self.leader()
        killed = self.c[name].kill()
        self.say(f"killed {name}; waiting for its lease to lapse and the pool to drop it")
        dropped = self.until(lambda: self.r.zscore(self.keys.leases, name) is None)
        if dropped is None:
            raise DemoFailed(f"the pool never dropped {name} after its lease lapsed")
        self.say(f"the pool dropped {name} {dropped - killed:.2f} s after the kill (lease {self.c.ttl:g} s)")
        after, _ = self.leader()
        elected = self.since(mark, "elected")
        ok = not elected and before == after
        self.say(f"{leader} still leads term {after.term if after else '?'}; elections since the kill: {len(elected)}")
        self.record(
            f"SIGKILL a follower ({name})", "nothing changes",
            f"{after.member if after else 'nobody'} leads term {after.term if after else '?'}", ok,
        )  # fmt: skip

    def shutdown_leader(self, leader: str) -> str:
        self.step(f"5. Kind shutdown of the leader (SIGTERM {leader})")
        mark = self.events.mark()
        sent = self.c[leader].signal(signal.SIGTERM)
        got = self.elected(mark, exclude=leader)
        if got is None:
            raise DemoFailed("no member took over after the SIGTERM")
        name, event = got
        revoked = self.wait(lambda n, e: n == leader and e["event"] == "revoked", mark)
        try:
            code: int | None = self.c[leader].proc.wait(self.patience)
        except subprocess.TimeoutExpired:
            code = None
        handoff = event["t"] - sent
        reason = revoked[1]["reason"] if revoked else "?"
        self.say(f"{leader} stopped its task and released the lead (revoked: {reason}); it exited with code {code}")
        if revoked:
            gap = (event["t"] - revoked[1]["t"]) * 1000
            self.say(
                f"{name} was elected, term {event['term']}: {handoff * 1000:.0f} ms after the SIGTERM, "
                f"{gap:.0f} ms after the release"
            )
        ok = name == "a" and code == 0 and reason == "shutdown" and handoff < self.c.ttl
        self.record(
            f"SIGTERM the leader ({leader})", "hand-over in milliseconds, exit 0",
            f"{name} after {handoff * 1000:.0f} ms, exit {code}", ok,
        )  # fmt: skip
        self.handoff = handoff
        return name

    def takeover(self, leader: str) -> None:
        self.step("6. Takeover by a higher-priority member (start d --priority 10 --takeover)")
        mark = self.events.mark()
        worker = self.c.start("d", "--priority", "10")
        got = self.wait(lambda n, e: n == "d" and e["event"] == "elected", mark)
        if got is None:
            raise DemoFailed("d never took the lead over")
        event = got[1]
        revoked = self.wait(lambda n, e: n == leader and e["event"] == "revoked", mark, 1.0)
        reason = revoked[1]["reason"] if revoked else "?"
        took = event["t"] - worker.started
        gap = f", {(event['t'] - revoked[1]['t']) * 1000:.0f} ms after {leader} stepped down" if revoked else ""
        self.say(
            f"{leader} stepped down (revoked: {reason}); d was elected, term {event['term']}, "
            f"{took:.2f} s after it started{gap}"
        )
        self.record(
            "higher priority joins", f"d takes over from {leader}",
            f"d leads term {event['term']} ({leader}: {reason})", reason == "takeover",
        )  # fmt: skip

    def run(self) -> bool:
        leader = self.form()
        killed = leader
        leader = self.kill_leader(leader)
        self.restart(killed, leader, f"3. Restart of {killed}: it rejoins as a follower")
        follower = next(n for n in "abc" if n not in (leader, killed))
        self.kill_follower(follower, leader)
        self.restart(follower, leader, f"4b. Restart of {follower}")
        old = leader
        leader = self.shutdown_leader(leader)
        self.restart(old, leader, f"5b. Restart of {old}")
        self.takeover(leader)
        tracked_work(self, "d")
        ok = self.summary()
        self.step("Final state (leaderpool-cli status)")
        self.out.write(self.status_text() + "\n")
        return ok

    def status_text(self) -> str:
        async def read() -> str:
            client = async_client(self.c.url)
            try:
                return status.render(await status.read_status(client, [self.c.pool], self.c.prefix))
            finally:
                await client.aclose()

        return asyncio.run(read())
