"""``python -m leaderpool.cli``."""

import sys

try:
    from leaderpool.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while starting: quietly, as main() itself does
    sys.exit(130)

sys.exit(main())
