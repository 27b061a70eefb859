"""The floor under a kind hand-over: ``python benchmarks/floor_pipeline.py pub|sub HOST PORT CHANNEL``.

The least any hand-over between two processes through Redis can take on this machine: a
publisher that, on SIGTERM, sends one ``PUBLISH`` from its signal handler on a connection opened
beforehand, and a subscriber blocked in ``recv`` on its own connection that writes one line
(``{"floor": "read", "ns": ...}``, CLOCK_MONOTONIC) as soon as the message arrives. No event
loop, no parsing beyond finding the message, no script: a signal, a round trip's first half
through Redis, a wake-up. :mod:`benchmarks.path_steps` times it beside the hand-overs.
Both print ``{"floor": "ready"}`` once connected (the subscriber once subscribed).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time


def _connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)
    return s


def _say(what: str) -> None:
    os.write(1, b'{"floor":"%s","ns":%d}\n' % (what.encode(), time.monotonic_ns()))


def publisher(host: str, port: int, channel: str) -> None:
    s = _connect(host, port)
    command = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$1\r\nx\r\n" % (len(channel), channel.encode())

    def on_term(signum: int, frame: object) -> None:
        s.sendall(command)

    signal.signal(signal.SIGTERM, on_term)
    _say("ready")
    for _ in range(100_000):  # each SIGTERM interrupts recv (PEP 475: the handler runs, recv resumes)
        if not s.recv(64):  # the replies (":1"), read whenever
            return


def subscriber(host: str, port: int, channel: str) -> None:
    s = _connect(host, port)
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel.encode()))
    s.recv(256)  # the confirmation
    _say("ready")
    for _ in range(100_000):
        data = s.recv(256)
        if not data:
            return
        if b"message" in data:
            _say("read")


if __name__ == "__main__":
    role, host, port, channel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    (publisher if role == "pub" else subscriber)(host, port, channel)
