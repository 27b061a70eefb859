"""The worker: ``python -m leaderpool.worker`` (``leaderpool-worker``), one member of one pool per
process, running the leader task while it leads. :mod:`.main` is the entry point (exit codes,
start-up), :mod:`.service` the running worker (signals, shutdown), :mod:`.settings` reads its flags
and variables, :mod:`.tasks` runs the leader's work."""
