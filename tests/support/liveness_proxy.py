"""The TCP proxy of the fast-failover tests now lives in :mod:`leaderpool.testing.proxy` (the
chaos runner uses it too); this name stays for the tests that import it from here."""

from __future__ import annotations

from leaderpool.testing.proxy import Proxy

__all__ = ["Proxy"]
