"""A task module whose import takes a minute (``--task tests.support.slow_import_task:run``): the worker is
still starting up (reading its settings) while it imports. It creates the file named by
$LEADERPOOL_TEST_IMPORTING_FILE first, so a test knows the worker is inside start-up."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.support.worker_tasks import IMPORTING_FILE

with open(os.environ[IMPORTING_FILE], "w"):
    pass
time.sleep(60)


async def run(ctx: Any) -> None:
    await ctx.stop.wait()
