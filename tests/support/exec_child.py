"""A leader-only command for the ``--exec`` tests: records its start (with the LEADERPOOL_*
variables it was given and its pid) in $LEADERPOOL_TEST_RUNS_FILE, then waits; on SIGTERM it
records that it stopped and exits 0. With ``exit N`` as arguments it exits N at once instead;
with ``stubborn`` it ignores SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def record(event: str) -> None:
    line = {
        "event": event, "pid": os.getpid(), "t": time.time(), "pool": os.environ.get("LEADERPOOL_POOL"),
        "member": os.environ.get("LEADERPOOL_MEMBER"), "term": os.environ.get("LEADERPOOL_TERM"),
        "slot": os.environ.get("LEADERPOOL_SLOT"),
    }  # fmt: skip
    fd = os.open(os.environ["LEADERPOOL_TEST_RUNS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def main() -> int:
    if sys.argv[1:2] == ["exit"]:
        record("exiting")
        return int(sys.argv[2])
    stopped = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True

    if sys.argv[1:2] == ["stubborn"]:  # ignores SIGTERM: only SIGKILL ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)
    record("started")
    print(f"command output from pid {os.getpid()}", flush=True)
    while not stopped:
        time.sleep(0.01)
    record("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
