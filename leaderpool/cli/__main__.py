"""``python -m leaderpool.cli``."""

import sys

from leaderpool.cli.main import main

sys.exit(main())
