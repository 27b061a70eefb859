"""Work for the leader: a durable job stream, calls with replies, targeted calls and multicall.

Layout: :mod:`.jobs_config` (``JobsConfig``), :mod:`.wire` (payloads, entries, replies, the handler's
context), :mod:`.job_scripts` (the Lua scripts), :mod:`.job_store` (typed calls), :mod:`.calls` (submit,
call, multicall), :mod:`.pool_work` (the faces' work methods on them), :mod:`.demo_run` (running a
handler), :mod:`.consumer` (the leader's consumer), :mod:`.inbox` (a member's inbox),
:mod:`.job_service` (both, driven by an election's lead hooks).
"""
