"""One arq worker for the jobs benchmark: ``python -m benchmarks.contenders.arq_worker URL
JOB_TIMEOUT_S``, with arq's defaults otherwise (10 jobs at once, a 0.5 s poll)."""

from __future__ import annotations

import os
import sys

from arq.connections import RedisSettings
from arq.worker import Worker

from benchmarks.jobs_handlers import arq_handler


def main() -> None:
    url, timeout = sys.argv[1], float(sys.argv[2])
    os.environ["BENCH_JOBS_URL"] = url
    worker = Worker(
        functions=[arq_handler], redis_settings=RedisSettings.from_dsn(url), job_timeout=timeout, log_results=False
    )
    print('{"event": "ready"}', flush=True)
    worker.run()


if __name__ == "__main__":
    main()
