"""What a watcher (:mod:`leaderpool.backend.watcher`) hands its listeners: the source of each
notification, and its payload.

A listener is called on the watcher's event loop with ``(source, payload)``:

- :attr:`NotificationSource.KEYSPACE`: a keyspace event on a pool's leader key; the payload is
  the event (``set``, ``expire``, ``del``, ``expired``);
- :attr:`NotificationSource.EVENTS`: a message on a plain pub/sub channel (a pool's events
  channel, names' and groups' channels); the payload is the message;
- :attr:`NotificationSource.DISCONNECTED`: the pub/sub connection was lost, this moment;
- :attr:`NotificationSource.RESYNC`: it was re-established (or, on a Redis Cluster, a channel
  moved to another master). Pub/sub is fire-and-forget: whatever happened meanwhile is lost, so
  the listener re-reads state.

The last two carry an empty payload. A notification is a hint, never the truth: listeners
re-read Redis after every one.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class NotificationSource(str, Enum):
    """Where a notification comes from (a ``str`` enum: the values are the strings the watcher
    always passed)."""

    KEYSPACE = "keyspace"
    EVENTS = "events"
    DISCONNECTED = "disconnected"
    RESYNC = "resync"


Listener = Callable[[NotificationSource, str], None]
"""A watcher's listener: called with a notification's source and its payload."""
