"""Programs for the contained-process-tree tests and benchmark (``python tree_procs.py MODE DIR``):

- ``helper DIR``: a leader's helper: records its pid in ``DIR/pids``, then appends a timestamp
  (``time.time_ns()``) to ``DIR/ticks-PID`` every millisecond -- each line an act -- for at most
  ``LIFE_S``. SIGTERM is recorded in ``DIR/events`` (``term PID``) and ends it, unless
  ``TREE_STUBBORN=1``: then it ignores it (only SIGKILL ends it).
- ``doublefork DIR``: forks, the child calls setsid() and forks again, the grandchild runs
  ``helper`` (a daemon escaping its session and its parent); the first process then waits.
- ``first-act OLD_DIR OUT [--wait]``: the next leader's command: its first act is to write ``OUT``
  (JSON: its time, which of ``OLD_DIR/pids`` still run, its environment); with ``--wait`` it then
  waits for SIGTERM.
- ``hold auto|off -- COMMAND...``: a parent that starts COMMAND as a contained tree (with or
  without a cgroup), prints the supervisor's report as JSON, and sleeps (for a test to SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

LIFE_S = 60.0
"""A helper that nobody killed ends by itself: a failing test leaves nothing running for long."""
TICK_S = 0.001


def alive(pid: int) -> bool:
    """The process runs (a zombie has stopped acting: it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pids(directory: Path) -> list[int]:
    path = directory / "pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def ticks(directory: Path) -> list[int]:
    """Every act of every helper in ``directory`` (nanoseconds since the epoch)."""
    return [int(x) for p in directory.glob("ticks-*") for x in p.read_text().split() if x.strip().isdigit()]


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def helper(directory: Path) -> None:
    me = os.getpid()
    if os.environ.get("TREE_STUBBORN") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:

        def on_term(_signum: int, _frame: object) -> None:
            _append(directory / "events", f"term {me}\n")
            os._exit(0)

        signal.signal(signal.SIGTERM, on_term)
    _append(directory / "pids", f"{me}\n")
    fd = os.open(directory / f"ticks-{me}", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    end = time.monotonic() + LIFE_S
    while time.monotonic() < end:
        os.write(fd, f"{time.time_ns()}\n".encode())
        time.sleep(TICK_S)
    os._exit(0)


def doublefork(directory: Path) -> None:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            helper(directory)
        os._exit(0)
    os.wait()
    _append(directory / "pids", f"{os.getpid()}\n")
    end = time.monotonic() + LIFE_S
    while time.monotonic() < end:
        time.sleep(0.05)


def first_act(old: Path, out: Path, wait: bool) -> None:
    now = time.time_ns()
    still = [pid for pid in pids(old) if alive(pid)]
    out.write_text(json.dumps({"t": now, "alive": still, "pid": os.getpid(), "env": dict(os.environ)}))
    if not wait:
        return
    stopped = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, on_term)
    end = time.monotonic() + LIFE_S
    while not stopped and time.monotonic() < end:
        time.sleep(0.01)


def hold(cgroup: bool, command: list[str]) -> None:
    from leaderpool.proctree.launch import TreeSpec, start_tree

    tree = start_tree(TreeSpec(tuple(command), grace_s=5.0, cgroup=cgroup), env=os.environ)
    print(json.dumps({"supervisor": tree.pid, "pid": tree.command_pid, "containment": tree.containment}), flush=True)
    time.sleep(LIFE_S)


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "helper":
        helper(Path(argv[1]))
    elif mode == "doublefork":
        doublefork(Path(argv[1]))
    elif mode == "first-act":
        first_act(Path(argv[1]), Path(argv[2]), "--wait" in argv[3:])
    elif mode == "hold":
        hold(argv[1] == "auto", argv[argv.index("--") + 1 :])
    else:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
