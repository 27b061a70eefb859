"""The floor on this machine: a Redis round trip (PING), and how long a keyspace notification
takes to reach a subscriber on another connection after a SET is sent."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import redis

from benchmarks.stats import summary


def ping_rtt(url: str, n: int) -> dict[str, Any]:
    """PING round trips: through redis-py, and on a bare socket (the wire and Redis alone)."""
    client = redis.Redis.from_url(url)
    parts = urlsplit(url)
    try:
        for _ in range(20):
            client.ping()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            client.ping()
            samples.append(time.perf_counter_ns() - t0)
        raw = []
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(n + 20):
                t0 = time.perf_counter_ns()
                s.sendall(b"PING\r\n")
                if not s.recv(64).startswith(b"+PONG"):
                    raise RuntimeError("unexpected reply to PING")
                raw.append(time.perf_counter_ns() - t0)
        return {"redis_py_us": summary(samples, scale=1e-3), "socket_us": summary(raw[20:], scale=1e-3)}
    finally:
        client.close()


def keyspace_notification(url: str, n: int) -> dict[str, Any]:
    """SET sent on one connection -> its ``__keyspace@0__`` message read on another (the SET's
    own reply is read afterwards, so the round trip is not counted)."""
    client = redis.Redis.from_url(url)
    key = "bench:floor:notify"
    db = int(urlsplit(url).path.lstrip("/") or 0)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    writer = redis.Connection(host=urlsplit(url).hostname or "127.0.0.1", port=urlsplit(url).port or 6379, db=db)
    try:
        flags = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
        pubsub.subscribe(f"__keyspace@{db}__:{key}")
        while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
            pass
        writer.connect()
        samples = []
        missed = 0
        for i in range(n + 10):
            t0 = time.perf_counter_ns()
            writer.send_command("SET", key, str(i))
            message = None
            deadline = time.monotonic() + 1.0
            while message is None and time.monotonic() < deadline:
                message = pubsub.get_message(timeout=1.0)
            t1 = time.perf_counter_ns()
            writer.read_response()
            if message is None:
                missed += 1
            elif i >= 10:
                samples.append(t1 - t0)
        return {"flags": flags, "set_to_message_us": summary(samples, scale=1e-3), "missed": missed}
    finally:
        pubsub.close()
        writer.disconnect()
        client.delete(key)
        client.close()


def measure(url: str, n: int) -> dict[str, Any]:
    return {"ping": ping_rtt(url, n), "keyspace_notification": keyspace_notification(url, max(n // 4, 20))}
