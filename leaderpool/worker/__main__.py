"""``python -m leaderpool.worker``."""

import sys

from leaderpool.worker.main import main

sys.exit(main())
