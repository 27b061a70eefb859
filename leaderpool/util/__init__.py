"""Small utilities the whole library stands on; none knows about pools or Redis.

Time: :mod:`.timeouts` (limits and cancellations never lost), :mod:`.ticker` (coarse shared
wake-ups), :mod:`.alarm` (a sleep a notification cuts short). Threads and loops:
:mod:`.threads` (threads that never take the process's signals), :mod:`.background_loop` (the
process's one event loop for threaded code), :mod:`.lifecycle` (what an asyncio face and its
blocking twin share), :mod:`.stop_signals` (SIGTERM caught while a face hands over).
Logging: :mod:`.log`, :mod:`.throttle`. Process tuning: :mod:`.gc_tuning`,
:mod:`.constants`. Names: :mod:`.naming` (the rule for names in keys), :mod:`.exports` (lazy
exports of a package's ``__init__``). Output: :mod:`.printable` (text from outside, safe on a
terminal).
"""
