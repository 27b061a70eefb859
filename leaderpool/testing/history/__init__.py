"""Histories of operations, Jepsen-style, and the checkers that judge them: pure functions, no I/O.

A history is a list of :class:`~.ops.Op` events (``invoke``, then ``ok``, ``fail`` or ``info``
for the same process), as the chaos run's leader task records them (leaderpool/testing/chaos/).

- :mod:`.ops`: the events, pairing them into operations, and cutting a history at data losses.
- :mod:`.models`: sequential specifications: a register and a mutex.
- :mod:`.wgl`: the linearizability search (Wing & Gong, with Lowe's just-in-time
  linearization and a cache of (linearized set, state)), bounded in steps and time.
- :mod:`.counter`: the lost-update check of a counter read-modify-written through fenced writes.
- :mod:`.permits`: a semaphore's permits never exceeded; a read-write lock's readers and a writer never together.
- :mod:`.edn`: the same history in Jepsen's EDN, for knossos or elle.

Importing this package imports nothing else.
"""
