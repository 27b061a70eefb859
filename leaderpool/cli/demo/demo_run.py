"""``leaderpool-cli demo``: an embedded redis-server (or ``--redis``), the worker processes, the
experiments, and the cleanup: every process it starts is stopped by pid on the way out, on
success, error or Ctrl-C alike."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
from typing import Any, TextIO

import redis

from leaderpool.backend.connect import blocking_client
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.urls import redact
from leaderpool.cli.demo.experiments import Demo
from leaderpool.cli.demo.narration import DemoFailed
from leaderpool.cli.demo.workers import Workers
from leaderpool.console.args import Options, UsageError, seconds
from leaderpool.testing.redis_server import INSTALL_HINT, RedisServer, find_redis_servers, server_version


def pool_keys(keys: Keyspace) -> list[str]:
    """Every key of a pool, as :class:`Keyspace` names them (to clean up a shared server)."""
    names = [n for n, v in vars(Keyspace).items() if isinstance(v, property) and not n.startswith("_")]
    return [getattr(keys, n) for n in names if n != "events"]


def _interrupt_on(*signals: signal.Signals) -> None:
    """Treat these like Ctrl-C, so the cleanup in ``finally`` runs (the demo is an entry point)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, interrupt)


def main(ns: argparse.Namespace, o: Options, *, redis_url: str | None, prefix: str, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every experiment went as expected."""
    out = out or sys.stdout
    ttl = o.get("ttl", "--ttl", None, seconds, default=2.0)
    if not 0.2 <= ttl <= 30:
        raise UsageError("--ttl", f"must be between 0.2 and 30 seconds for the demo, got {ttl:g}")
    pool = ns.pool or ("demo" if redis_url is None else f"demo-{secrets.token_hex(2)}")
    try:
        Keyspace(pool, prefix)
    except ValueError as exc:
        raise UsageError("--pool", str(exc)) from None
    _interrupt_on(signal.SIGTERM, signal.SIGHUP)
    server: RedisServer | None = None
    logdir = tempfile.mkdtemp(prefix="leaderpool-demo-")
    cluster: Workers | None = None
    client: redis.Redis | None = None
    url = redis_url or ""
    ok = False
    try:
        if redis_url is None:
            binaries = find_redis_servers()
            if not binaries:
                print(f"leaderpool-cli: error: {INSTALL_HINT}", file=sys.stderr)
                return 1
            server = RedisServer(binaries[0]).start()
            url = server.url
            where = f"an embedded redis-server {server_version(binaries[0])} at {url}"
        else:
            url = redis_url
            where = f"the Redis at {redact(url)}"
        client = blocking_client(url, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
        cluster = Workers(url, pool, prefix, ttl, logdir)
        out.write(
            f"leaderpool demo: pool {pool!r} on {where}\n"
            f"workers use a {ttl:g} s lease (heartbeat {ttl / 3:.2f} s); times come from their JSON events\n"
        )
        ok = Demo(cluster, client, out).run()
        out.write("\nAll experiments went as expected.\n" if ok else "\nSome experiments did not go as expected.\n")
        return 0 if ok else 1
    except DemoFailed as exc:
        print(f"leaderpool-cli: demo failed: {exc}", file=sys.stderr)
        return 1
    except redis.exceptions.ConnectionError as exc:
        print(f"leaderpool-cli: error: cannot reach Redis at {redact(url)}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the workers and Redis", file=sys.stderr)
        ok = True  # nothing went wrong: no logs to keep
        return 130
    finally:
        if cluster is not None:
            cluster.group.close(grace=5.0)
            out.write(f"stopped all {len(cluster.group.started)} worker processes started")
        if client is not None:
            with contextlib.suppress(Exception):
                if redis_url is not None:  # leave a shared server as we found it
                    client.delete(*pool_keys(Keyspace(pool, prefix)))
                client.close()
        if server is not None:
            server.cleanup()
            out.write(" and the embedded redis-server")
        if cluster is not None:
            out.write("\n")
        keep = bool(getattr(ns, "keep_logs", False)) or not ok
        if keep and cluster is not None:
            out.write(f"worker logs: {logdir}\n")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
        out.flush()
