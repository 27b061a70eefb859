"""Benchmarks: leaderpool against tooz, python-redis-lock, redis-py's Lock and a client-go-style
lease, side by side on one redis-server in one run. ``python -m benchmarks --help``."""
