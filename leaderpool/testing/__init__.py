"""For tests, benchmarks and the demo: an embedded ``redis-server`` on a free port
(:mod:`.redis_server`) and the one child-process harness (:mod:`.processes`). Not needed by
``import leaderpool``."""
