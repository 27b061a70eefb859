"""``leaderpool-cli demo``: the seed's experiments, replayed with real processes.

An embedded redis-server (or ``--redis``) and worker processes a, b, c (``python -m
leaderpool.worker --json-events --takeover``) form a pool; the demo then hard-kills the leader
(replaced in milliseconds by fast failover), restarts it, hard-kills a follower, shuts the leader
down kindly, and lets a higher-priority member take over, narrating each step with times taken
from the workers' JSON events. :mod:`.demo_run` sets up and cleans up, :mod:`.workers` starts the
processes, :mod:`.experiments` (with :mod:`.tracked_work`) plays the steps, :mod:`.narration`
prints and records them, and :mod:`.handler` is the workers' job handler.
"""

from leaderpool.cli.demo.demo_run import main

__all__ = ["main"]
