"""``python -m benchmarks [--quick] [--ttl S] [--rounds N] [--contenders a,b] [--skip-scale] [--out DIR]``."""

import signal

from benchmarks.runner import main


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# A SIGTERM unwinds like Ctrl-C, so every process and redis-server the run started is stopped.
signal.signal(signal.SIGTERM, _interrupt)
raise SystemExit(main())
