"""Signals, end to end: real worker processes, real signals. SIGTERM, SIGINT and SIGHUP each hand
over kindly and exit 0; a second signal exits 1 at once whatever the task does; no task keeps the
process alive; Ctrl-C during start-up ends it quietly, as killed by SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.worker_procs import PATIENCE, ROOT, Workers, clean_env, cli, eventually, workers_for
from tests.support.worker_tasks import ACTS_FILE, IMPORTING_FILE, STOPPING_FILE

MARK_MAIN_ENTERED = """
import sys


def _in_main(frame, event, arg):
    # the first line after main's own first line (its ``try:``): from here a KeyboardInterrupt,
    # also one raised in this tracer, is main's to handle
    if event == "line" and frame.f_lineno > frame.f_code.co_firstlineno + 1:
        sys.settrace(None)
        frame.f_trace = None
        open({marker!r}, "w").close()
    return _in_main


def _calls(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "main" and frame.f_globals["__name__"] == "leaderpool.worker.main":
        return _in_main
    return None


sys.settrace(_calls)
"""
"""A ``sitecustomize`` that creates ``marker`` once ``leaderpool.worker.main.main`` has begun its
body (inside its ``try``). Marked at main's call event instead, a SIGINT sent at once could land
in the marking code itself, before main's first statement: a traceback no program can guard
(seen on Python 3.10 in CI)."""


def sigint_by_default() -> None:
    """In the child before it runs Python: SIGINT as in a terminal. A test run started in the
    background by a non-interactive shell has SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


STUBBORN_TASKS = ["ignores_the_stop_in_a_thread", "swallows_cancellation"]


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_server.url) as ws:
        yield ws


def history(url: str, pool: str = "p") -> list[tuple[str, int, str, str]]:
    done = cli("--redis", url, "history", pool, "--json")
    assert 0 == done.returncode, done.stderr
    return [(r["event"], r["term"], r["member"], r["reason"]) for r in json.loads(done.stdout)["transitions"]]


class TestKindShutdown:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
    def test_a_shutdown_signal_hands_over_and_exits_0(
        self, workers: Workers, redis_server: RedisServer, sig: signal.Signals
    ) -> None:
        """With a 60 s lease, b can only be elected within the test's patience by a hand-over."""
        a = workers.start("a", ttl="60")
        a.elected()
        b = workers.start("b", ttl="60")
        b.sees("a")
        a.signal(sig)
        assert 2 == b.elected()["term"]
        assert 0 == a.wait()
        assert "shutdown" == a.of("revoked")[-1]["reason"]
        assert [("elected", 1, "a", ""), ("released", 1, "a", "shutdown"), ("elected", 2, "b", "handoff")] == (
            history(redis_server.url)
        )
        assert "Traceback" not in a.stderr

    @pytest.mark.parametrize("task", ["act_often", "act_often_in_a_thread"])
    def test_the_old_task_acts_for_the_last_time_before_the_new_leader_acts(
        self, workers: Workers, tmp_path: Path, task: str
    ) -> None:
        """The stop starts at the signal (the task is told at once, the lead given up locally at
        once), but the lead is handed over only once the task has ended: every act of a's task
        (each timed on CLOCK_MONOTONIC, one clock for both processes) comes before b's first."""
        acts = {m: tmp_path / f"acts-{m}.jsonl" for m in "ab"}

        def recorded(member: str) -> list[float]:
            path = acts[member]
            lines = path.read_text().split("\n")[:-1] if path.exists() else []  # whole lines only
            return [json.loads(line)["t"] for line in lines]

        def start(member: str) -> Any:
            task_spec = f"tests.support.worker_tasks:{task}"
            return workers.start(member, "--task", task_spec, ttl="60", env={ACTS_FILE: str(acts[member])})

        a = start("a")
        a.elected()
        b = start("b")
        b.sees("a")
        eventually(lambda: len(recorded("a")) >= 3)  # a's task is acting
        a.signal(signal.SIGTERM)
        assert 2 == b.elected()["term"]
        assert 0 == a.wait()
        eventually(lambda: recorded("b"))
        assert max(recorded("a")) < min(recorded("b"))

    def test_an_async_task_that_swallows_cancellation_cannot_hold_the_exit(
        self, workers: Workers, tmp_path: Path
    ) -> None:
        """After the grace the task is cancelled, then abandoned: the worker exits 0 (it handed over)."""
        stopping = tmp_path / "stopping"
        a = workers.start(
            "a", "--task", "tests.support.worker_tasks:swallows_cancellation", "--task-grace", "0.2",
            env={STOPPING_FILE: str(stopping)},
        )  # fmt: skip
        a.elected()
        a.signal(signal.SIGTERM)
        assert 0 == a.wait()
        assert stopping.exists()
        assert "task_abandoned" in a.stderr
        assert "Traceback" not in a.stderr and "Task was destroyed" not in a.stderr  # logged once, as abandoned


class TestSecondSignal:
    @pytest.mark.parametrize("task", STUBBORN_TASKS)
    def test_a_second_signal_exits_1_at_once_whatever_the_task_does(
        self, workers: Workers, tmp_path: Path, task: str
    ) -> None:
        """The first SIGTERM waits for the task (grace 50 s, longer than the test's patience); the
        second one ends the process with exit 1 while the task still ignores its stop."""
        stopping = tmp_path / "stopping"
        a = workers.start(
            "a", "--task", f"tests.support.worker_tasks:{task}", "--task-grace", "50", ttl="60",
            env={STOPPING_FILE: str(stopping)},
        )  # fmt: skip
        a.elected()
        a.signal(signal.SIGTERM)
        eventually(stopping.exists)  # the shutdown is waiting on the task now
        a.signal(signal.SIGTERM)
        assert 1 == a.wait()
        assert "worker_forced_exit" in a.stderr and "Traceback" not in a.stderr


class TestCtrlCDuringStartUp:
    def test_the_entry_module_imports_nothing_heavy(self) -> None:
        """The console script imports leaderpool.worker.main before main() can guard anything: that
        import must not load redis, structlog, asyncio or the election (main() imports them)."""
        probe = (
            "import sys, leaderpool.worker.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'redis', 'structlog', 'asyncio'} "
            "or m.startswith(('leaderpool.', 'leaderpool_'))))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env()
        )
        assert (0, "") == (done.returncode, done.stderr)
        assert ["leaderpool.worker", "leaderpool.worker.main"] == json.loads(done.stdout.replace("'", '"'))

    def test_sigint_while_the_task_module_imports_ends_quietly(self, tmp_path: Path) -> None:
        """Start-up (reading settings, importing the task) is interrupted: no traceback, no output,
        the process ends as killed by SIGINT (a shell shows 130)."""
        importing = tmp_path / "importing"
        proc = subprocess.Popen(
            [sys.executable, "-m", "leaderpool.worker", "--pool", "p", "--task", "tests.support.slow_import_task:run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=sigint_by_default,
            env=clean_env(**{IMPORTING_FILE: str(importing)}),
        )  # fmt: skip
        try:
            eventually(importing.exists)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=PATIENCE)
        finally:
            proc.kill()
            proc.wait(PATIENCE)
        assert (-signal.SIGINT, "", "") == (proc.returncode, out, err)

    @pytest.mark.parametrize("delay_s", [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    def test_sigint_at_any_moment_of_start_up_prints_no_traceback(self, delay_s: float, tmp_path: Path) -> None:
        """Through the installed console script. The delays count from the moment main() is
        entered (a ``sitecustomize`` profile hook marks it): what comes before is CPython's own
        start-up and the import of the light entry module (see the test above), a few
        milliseconds no console script can guard. Wherever the SIGINT lands after, no traceback:
        during start-up (main's imports, settings, logging, the loop) the process ends as killed
        by SIGINT; once the worker runs (it logged the signal) it is a kind shutdown, exit 0."""
        script = Path(sys.executable).parent / "leaderpool-worker"
        if not script.exists():
            pytest.skip("leaderpool-worker is not installed in this environment")
        main_entered = tmp_path / "main-entered"
        (tmp_path / "sitecustomize.py").write_text(MARK_MAIN_ENTERED.format(marker=str(main_entered)))
        env = clean_env()
        env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: the worker waits for Redis
        proc = subprocess.Popen(
            [str(script), "--redis", url, "--pool", "p"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=sigint_by_default, env=env,
        )  # fmt: skip
        try:
            eventually(main_entered.exists, interval=0.001)
            time.sleep(delay_s)  # where the signal lands is the parameter, not something waited for
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=PATIENCE)
        finally:
            proc.kill()
            proc.wait(PATIENCE)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert "" == out
        expected = 0 if "signal_received" in err else -signal.SIGINT
        assert expected == proc.returncode, err
