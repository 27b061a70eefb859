"""Low descriptor slots, so that a dying process closes its liveness connections last.

When a process dies, its kernel closes every descriptor, but the sockets behind them are released
afterwards, most recently closed first: the highest descriptor's socket goes first, the lowest's
last (Linux queues each final close as task work, and runs that list last in, first out). A
follower that reads its liveness connection's close then asks Redis whether the leader's
connection is gone; if the liveness socket sat above the Redis connection, Redis has often not
heard of that close yet, and the follower has to ask again (a few round trips, or much longer
when the dying process loses its CPU between the closes on a busy host).

So, before its Redis connections exist, a process reserves a few descriptors low in the table
(:func:`reserve`, copies of ``/dev/null``), and each accepted liveness connection moves into
one (:func:`move_low`): its socket is then released after every socket opened later, the
leader's Redis connections included. (Only its position matters, and only if it has no other
descriptor: a socket is released when its last descriptor closes, and they close in ascending
order.) Where no slot is free (more watchers than slots), a connection stays where it is:
correct, only slower to confirm.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading

SLOTS = 8
"""How many liveness connections a process can pin: one per other process watching its leaders
(a link is shared by all the members of one process), so a few are plenty."""

_lock = threading.Lock()
_free: list[int] = []
_reserved: set[int] = set()
_placeholder: int | None = None  # /dev/null, what a free slot holds


def reserve(count: int = SLOTS) -> None:
    """Reserve ``count`` low slots (once per process; later calls do nothing). Call it before
    opening the Redis connections whose close must come first."""
    global _placeholder
    with _lock:
        if _placeholder is not None:
            return
        try:
            placeholder = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            slots = [fcntl.fcntl(placeholder, fcntl.F_DUPFD_CLOEXEC, 0) for _ in range(count)]
        except OSError:  # out of descriptors: connections go unpinned
            return
        _placeholder = placeholder
        _reserved.update(slots)
        _free.extend(sorted(slots, reverse=True))  # pop() hands out the lowest first


def move_low(sock: socket.socket) -> socket.socket:
    """``sock`` moved into a free slot (its old descriptor closed), or ``sock`` itself where no
    slot is free. Close the result with :func:`close`."""
    with _lock:
        if _placeholder is None or not _free:
            return sock
        slot = _free.pop()
        try:
            os.dup2(sock.fileno(), slot, inheritable=False)
        except OSError:
            _free.append(slot)
            return sock
    moved = socket.socket(fileno=slot)
    moved.setblocking(sock.getblocking())
    sock.close()
    return moved


def close(sock: socket.socket) -> None:
    """Close ``sock``; a slot's socket is swapped for the placeholder in one step (never a
    moment where the descriptor number is free for someone else to take), and the slot freed."""
    with _lock:
        slot = sock.fileno()
        if slot not in _reserved or _placeholder is None:
            sock.close()
            return
        sock.detach()
        os.dup2(_placeholder, slot, inheritable=False)
        _free.append(slot)


def free_slots() -> int:
    """How many slots are free (for tests and diagnostics)."""
    with _lock:
        return len(_free)
