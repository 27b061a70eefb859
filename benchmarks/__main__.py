"""``python -m benchmarks [--quick] [--ttl S] [--rounds N] [--contenders a,b] [--skip-scale] [--out DIR]``."""

from benchmarks.runner import main

raise SystemExit(main())
