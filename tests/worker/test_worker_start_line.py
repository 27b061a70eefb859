"""What a worker runs and says at start (issue 24): a worker given only ``--handler`` runs no demo
task, and an ``--exec`` worker's start-up line names its command, not the default task."""

from __future__ import annotations

from leaderpool.testing.redis_server import RedisServer
from leaderpool.worker.settings import parse_settings
from leaderpool.worker.tasks import DEFAULT_TASK, IDLE_TASK
from tests.support.worker_procs import eventually, workers_for

HANDLER = "tests.support.jobs_handlers:record"


def test_a_handler_worker_runs_no_demo_task() -> None:
    """--handler without --task: the idle task (no leader_work_done every second); --task still wins."""
    assert IDLE_TASK == parse_settings(["--pool", "p", "--handler", HANDLER], {}).task_spec
    assert IDLE_TASK == parse_settings([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_HANDLER": HANDLER}).task_spec
    assert DEFAULT_TASK == parse_settings(["--pool", "p"], {}).task_spec
    given = parse_settings(["--pool", "p", "--handler", HANDLER, "--task", DEFAULT_TASK], {})
    assert DEFAULT_TASK == given.task_spec


def start_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if "worker_started" in line)


def test_the_start_lines_name_what_runs_and_no_empty_field(redis_one: RedisServer) -> None:
    """An --exec worker names its command and no task; a --handler worker its handler and the idle task."""
    with workers_for(redis_one.url) as ws:
        runs = ws.start("a", "--exec", "--", "sleep", "600")
        runs.elected()
        line = eventually(lambda: start_line(runs.stderr))
        assert "exec=" in line and "sleep" in line and "task=" not in line and "None" not in line, line
    with workers_for(redis_one.url, pool="h") as ws:
        handles = ws.start("b", "--handler", HANDLER)
        handles.elected()
        line = eventually(lambda: start_line(handles.stderr))
        assert f"task={IDLE_TASK}" in line and f"handler={HANDLER}" in line and "None" not in line, line
