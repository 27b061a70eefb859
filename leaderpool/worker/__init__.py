"""The worker: ``leaderpool-worker`` (``python -m leaderpool.worker``; the console script is
:func:`leaderpool.worker.main.main`), one member of one pool per process, running the leader task
while it leads. Not a library: it exports nothing.

:mod:`.main` is the entry point (exit codes, start-up), :mod:`.worker_service` the running worker
(signals, shutdown), :mod:`.settings` reads its flags and variables (:mod:`.work_args` those of
schedules and ``--exec``), :mod:`.tasks` runs the leader's work (:mod:`.scheduled_task` once per
slot, :mod:`.task_state` its ``ctx.state``, :mod:`.exec` a command as the work),
:mod:`.name_keeper` holds its ``--name`` names, :mod:`.json_events` prints ``--json-events`` and
:mod:`.http` serves ``/healthz``, ``/leader`` and ``/metrics``. Its command-line plumbing is
:mod:`leaderpool.console`.
"""
