"""One member id, one acting process: real workers on a real redis-server, given the same
``--member-id`` (a shared env file, a copied unit), frozen with SIGSTOP and killed with SIGKILL.
The acts of each leader task are recorded on the system-wide monotonic clock with the renew
deadline the task saw, so "never two acting leaders" is checked on what the processes did."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leaderpool.testing.redis_server import RedisServer
from tests.support.worker_procs import WorkerProc, Workers, cli, eventually, workers_for
from tests.support.worker_tasks import ACTS_FILE

ACT = ("--task", "tests.support.worker_tasks:act_often")
IN_USE = re.compile(
    r"^leaderpool-worker: error: member id 'same' is in use in pool 'p' by a live process "
    r"\(pid (\d+) on host \S+ since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, incarnation ([0-9a-f]{16}); [^)]*\): "
)


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_server.url) as ws:
        yield ws


def acting(path: Path) -> list[dict[str, Any]]:
    """The acts a task made while its lead was valid (before the renew deadline it saw)."""
    if not path.exists():
        return []
    acts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [a for a in acts if a["t"] < a["deadline"]]


def members(url: str) -> list[dict[str, Any]]:
    done = cli("--redis", url, "status", "--pool", "p", "--json")
    assert 0 == done.returncode, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)["pools"][0]["members"]
    return found


def history(url: str) -> list[dict[str, Any]]:
    done = cli("--redis", url, "history", "p", "--json")
    assert 0 == done.returncode, done.stderr
    transitions: list[dict[str, Any]] = json.loads(done.stdout)["transitions"]
    return transitions


def refusal(worker: WorkerProc) -> re.Match[str]:
    """The refused worker's last stderr line: the id and its holder, in one line."""
    last = worker.stderr.strip().splitlines()[-1]
    found = IN_USE.match(last)
    assert found is not None, last
    return found


class TestTwoLiveProcessesOneId:
    def test_the_second_exits_2_naming_the_holder_and_the_first_leads_on(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        """The second is refused in one line (exit 2); the first keeps its lead and term; one member shown."""
        first = workers.start("same", ttl="2")
        assert 1 == first.elected()["term"]
        second = workers.start("same", ttl="2")
        assert 2 == second.wait()
        assert str(first.pid) == refusal(second).group(1)
        assert [] == second.of("elected")
        time.sleep(2.5)  # beyond a lease: the first is not disturbed
        assert first.alive() and [] == first.of("revoked")
        shown = members(redis_server.url)
        assert 1 == len(shown) and shown[0]["leader"]
        incarnation = shown[0]["incarnation"]
        assert (first.pid, refusal(second).group(2)) == (incarnation["pid"], incarnation["id"])
        assert {"id", "host", "pid", "since"} == set(incarnation)
        table = cli("--redis", redis_server.url, "status", "--pool", "p").stdout
        assert "INCARNATION" in table and f"{incarnation['id'][:8]} since" in table


class TestFrozenLeaderRestartedUnderItsId:
    def test_the_new_run_never_acts_in_the_old_term_and_the_old_one_stops_on_waking(
        self, workers: Workers, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """SIGSTOP the leader, start its id again: it joins only once the frozen lease lapsed and
        leads a new term; SIGCONT the old one: revoked, refused, never acting beside the new one."""
        old_acts, new_acts = tmp_path / "old.acts", tmp_path / "new.acts"
        # a lease long enough for the new process to start (and ask) while it runs, even on a busy machine
        old = workers.start("same", *ACT, ttl="6", env={ACTS_FILE: str(old_acts)})
        assert 1 == old.elected()["term"]
        eventually(lambda: acting(old_acts))
        old.signal(signal.SIGSTOP)
        client = redis.Redis.from_url(redis_server.url)
        frozen_deadline = float(client.zscore("leaderpool:{p}:leases", "same") or 0)
        new = workers.start("same", *ACT, ttl="6", env={ACTS_FILE: str(new_acts)})
        elected = new.elected()
        assert elected["term"] >= 2
        assert "member_id_held" in new.stderr and "proved_dead=False" in new.stderr  # it waited...
        assert "member_id_taken_over" in new.stderr  # ...for the frozen lease to lapse
        elected_ms = [e["t"] * 1000 for e in history(redis_server.url) if e["event"] == "elected"]
        assert 2 == len(elected_ms) and elected_ms[1] >= frozen_deadline
        eventually(lambda: acting(new_acts))
        old.signal(signal.SIGCONT)
        assert 2 == old.wait()
        assert str(new.pid) == refusal(old).group(1)
        assert ["lease_lost"] == [e["reason"] for e in old.of("revoked")]
        assert {1} == {e["term"] for e in old.of("elected")}
        time.sleep(0.5)  # the new leader acts on
        before, after = acting(old_acts), acting(new_acts)
        assert before and after
        assert max(a["t"] for a in before) < min(a["t"] for a in after)  # never two acting leaders
        assert {1} == {a["term"] for a in before} and {elected["term"]} == {a["term"] for a in after}
        assert new.alive() and [] == new.of("revoked")

    def test_a_holder_that_wakes_within_its_lease_keeps_its_id_and_its_lead(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        """Frozen for less than its lease: the process started meanwhile waits, sees the lease
        renewed once the holder wakes, and is refused; the holder leads on in term 1."""
        # a long lease: the holder wakes well within its renew deadline even on a busy machine
        old = workers.start("same", ttl="15")
        assert 1 == old.elected()["term"]
        old.signal(signal.SIGSTOP)
        new = workers.start("same", ttl="15")
        eventually(lambda: "member_id_held" in new.stderr)  # it watches the frozen holder's lease
        old.signal(signal.SIGCONT)
        assert 2 == new.wait()
        assert str(old.pid) == refusal(new).group(1)
        assert old.alive() and [] == old.of("revoked")
        assert [old.pid] == [m["incarnation"]["pid"] for m in members(redis_server.url)]
        assert [1] == [e["term"] for e in history(redis_server.url) if e["event"] == "elected"]


class TestCrashedMemberRestartedUnderItsId:
    def test_a_killed_leader_restarted_leads_a_new_term(
        self, workers: Workers, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """SIGKILL the leader, restart its id: it joins as a new run and leads term 2, never term 1."""
        old_acts, new_acts = tmp_path / "old.acts", tmp_path / "new.acts"
        old = workers.start("same", *ACT, env={ACTS_FILE: str(old_acts)})
        assert 1 == old.elected()["term"]
        eventually(lambda: acting(old_acts))
        old.kill()
        new = workers.start("same", *ACT, env={ACTS_FILE: str(new_acts)})
        assert 2 == new.elected()["term"]
        eventually(lambda: acting(new_acts))
        assert {2} == {a["term"] for a in acting(new_acts)}
        assert max(a["t"] for a in acting(old_acts)) < min(a["t"] for a in acting(new_acts))
        assert [new.pid] == [m["incarnation"]["pid"] for m in members(redis_server.url)]

    def test_a_killed_follower_restarted_joins_before_its_old_lease_ends(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        """Its old run is proved dead (its liveness endpoint refuses): the new run takes the id at
        once, without waiting out the old lease (15 s here)."""
        leader = workers.start("lead", ttl="15")
        leader.elected()
        old = workers.start("same", ttl="15")
        old.sees("lead")
        old.kill()
        client = redis.Redis.from_url(redis_server.url)
        old_deadline = float(client.zscore("leaderpool:{p}:leases", "same") or 0)
        new = workers.start("same", ttl="15")
        new.sees("lead")
        shown = {m["member"]: m for m in members(redis_server.url)}
        assert new.pid == shown["same"]["incarnation"]["pid"]
        assert shown["same"]["incarnation"]["since"] * 1000 < old_deadline
        assert "proved_dead=True" in new.stderr and "member_id_taken_over" in new.stderr
        assert leader.alive() and [] == leader.of("revoked")
