"""``leaderpool-cli`` (``python -m leaderpool.cli``; the console script is
:func:`leaderpool.cli.main.main`): look at pools and act on them from a shell. Not a library:
it exports nothing.

:mod:`.main`, the entry point, reads the command line with :mod:`.parser` (which nothing else
imports) and runs it with :mod:`.commands`, the one place where a failure becomes one line and an
exit code. The commands: :mod:`.oneshot_commands` (``status``, ``history``, ``resign``,
``evict``, ``forget``, ``doctor``, ``schedules``, ``whereis``, ``names``, ``unregister``: one
blocking client, no event loop, :mod:`.resp`'s small one where it can) on :mod:`.status`,
:mod:`.history`, :mod:`.resign`, :mod:`.evict`, :mod:`.forget`, :mod:`.doctor` with
:mod:`.doctor_data`, :mod:`.schedules` and :mod:`.names`; :mod:`.watch` (``status --watch``),
:mod:`.demo` (a package), :mod:`.dashboard`, :mod:`.lock`, and :mod:`.work`
(``submit``, ``call``, ``multicall``, ``jobs``, ``requeue``, ``drop``). What it shares with the
worker (flags from variables, credentials, one-line Redis errors, log set-up) is
:mod:`leaderpool.console`.
"""
