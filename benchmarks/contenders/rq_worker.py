"""One RQ worker for the jobs benchmark: ``python -m benchmarks.contenders.rq_worker URL``.

RQ's ``SimpleWorker`` runs jobs in its own process (the default ``Worker`` forks a child per
job, which costs milliseconds a job): the faster of RQ's two workers."""

from __future__ import annotations

import os
import sys

import redis
from rq import Queue, SimpleWorker

QUEUE = "bench"


def main() -> None:
    url = sys.argv[1]
    os.environ["BENCH_JOBS_URL"] = url
    connection = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue(QUEUE, connection=connection)], connection=connection)
    print('{"event": "ready"}', flush=True)
    worker.work(logging_level="WARNING")


if __name__ == "__main__":
    main()
