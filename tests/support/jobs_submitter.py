"""A process that submits jobs through a PoolClient: ``python -m tests.support.jobs_submitter URL POOL
TAG COUNT PACE_S``; prints ``{"event": "submitted", "ids": [...]}`` when done."""

from __future__ import annotations

import json
import sys
import time

from leaderpool import PoolClient


def main() -> None:
    url, pool, tag, count, pace = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    ids = []
    with PoolClient(pool, url) as client:
        for i in range(count):
            ids.append(client.submit({"tag": tag, "i": i, "sleep": 0.002}))
            time.sleep(pace)
    print(json.dumps({"event": "submitted", "tag": tag, "ids": ids}), flush=True)


if __name__ == "__main__":
    main()
