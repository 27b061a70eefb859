"""The demo's worker processes: ``python -m leaderpool.worker --json-events --takeover``, each
in a session of its own, logging to a directory the demo keeps when something went wrong."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from leaderpool.testing.processes import Child, ChildGroup, clean_env


@dataclass
class Workers:
    """The demo's worker processes of one pool (``python -m leaderpool.worker --json-events
    --takeover``), each logging to ``logdir``; every one started is in :attr:`group`."""

    url: str
    pool: str
    prefix: str
    ttl: float
    logdir: str

    def __post_init__(self) -> None:
        self.group = ChildGroup()

    def start(self, name: str, *extra: str) -> Child:
        argv = [
            sys.executable, "-m", "leaderpool.worker", "--pool", self.pool,
            "--member-id", name, "--node", f"node-{name}", "--ttl", f"{self.ttl:g}", "--takeover",
            "--prefix", self.prefix, "--json-events", "--log-format", "json",
            "--handler", "leaderpool.cli.demo.handler:tracked_work", *extra,
        ]  # fmt: skip
        generation = sum(c.name == name for c in self.group.started) + 1
        log_path = os.path.join(self.logdir, f"{name}-{generation}.log")
        # A session of its own: a Ctrl-C reaches the demo alone, which stops its workers itself.
        # The URL goes by the environment: it may hold a password, which argv would show to `ps`.
        env = clean_env(LEADERPOOL_REDIS_URL=self.url)
        return self.group.start(argv, name=name, env=env, stderr=log_path, new_session=True)

    def __getitem__(self, name: str) -> Child:
        """The latest process of worker ``name``."""
        return self.group.latest[name]
