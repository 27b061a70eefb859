"""What every command-line entry point shares: ``leaderpool-cli`` (:mod:`leaderpool.cli`),
``leaderpool-worker`` (:mod:`leaderpool.worker`) and the chaos runner
(``python -m leaderpool.testing.chaos``).

:mod:`.args` parses flags that may also come from environment variables (one-line errors, exit
2); :mod:`.credentials` finds the Redis URL and its password; :mod:`.preflight` says in one line
what went wrong with Redis; :mod:`.oneshot` runs the store's coroutines on a blocking client,
with no event loop; :mod:`.logs` sets up structlog on stderr. Not a library: nothing here is
exported.
"""
