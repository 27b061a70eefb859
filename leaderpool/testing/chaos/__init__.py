"""A chaos run of a leaderpool pool: worker processes against a real redis-server, each behind a
proxy the runner controls, under faults drawn from a printed seed; then a checker of what the
leaders did. ``python -m leaderpool.testing.chaos --help``.

- :mod:`.task`: the leader task the workers run (unfenced acts, fenced writes, a zombie write);
  :mod:`.leader_ops`: its work recorded as a history (a register, a counter).
- :mod:`.pool`: redis-server, proxies and workers; who leads, from the workers' events;
  :mod:`.skewed_clock`: the workers' clock, which a fault can make jump.
- :mod:`.faults`: the faults and their seeded order. :mod:`.tail`: waits for the next act.
- :mod:`.chaos_runner`: one run. :mod:`.timeline`: its records. :mod:`.checker`: the verdict,
  with :mod:`.history_checks` (the history, by :mod:`leaderpool.testing.history`).
- :mod:`.sentinel_lag`: a Sentinel failover to a lagging replica, a scenario of its own.
- :mod:`.report`: the summary tables, and the history in Jepsen's EDN.

Importing this package imports nothing else (the workers import :mod:`.task` through it).
"""
