"""A chaos run of a leaderpool pool: worker processes against a real redis-server, each behind a
proxy the runner controls, under faults drawn from a printed seed; then a checker of what the
leaders did. ``python -m leaderpool.testing.chaos --help``.

- :mod:`.task`: the leader task the workers run (unfenced acts, fenced writes, a zombie write).
- :mod:`.pool`: redis-server, proxies and workers; who leads, from the workers' events.
- :mod:`.faults`: the faults and their seeded order. :mod:`.tail`: waits for the next act.
- :mod:`.runner`: one run. :mod:`.timeline`: its records. :mod:`.checker`: the verdict.
- :mod:`.report`: the summary tables.

Importing this package imports nothing else (the workers import :mod:`.task` through it).
"""
