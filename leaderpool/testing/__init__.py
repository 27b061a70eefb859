"""For tests, benchmarks and the demo: an embedded ``redis-server`` on a free port
(:mod:`.redis_server`) and child processes of the worker (:mod:`.processes`). Not needed by
``import leaderpool``."""
