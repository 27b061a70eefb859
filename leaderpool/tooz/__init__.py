"""leaderpool as a tooz backend (``pip install leaderpool[tooz]``; scheme ``leaderpool://``):
:class:`LeaderpoolDriver`, found by tooz through the ``tooz.backends`` entry point
``leaderpool.tooz.driver:LeaderpoolDriver``.

Layout: :mod:`.driver` (the coordinator), :mod:`.driver_options` (its URL), :mod:`.translation`
(ids, errors and results as tooz's), :mod:`.groups` (groups in Redis), :mod:`.group_events` and
:mod:`.member_watch` (who joined or left), :mod:`.group_leads` (the elections), :mod:`.tooz_lock`
(locks). Importing this package does not import tooz: the names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.tooz.driver import LeaderpoolDriver
    from leaderpool.tooz.tooz_lock import LeaderpoolLock

__all__ = ["LeaderpoolDriver", "LeaderpoolLock"]
__getattr__, __dir__ = lazy_exports(__name__, {"LeaderpoolDriver": "driver", "LeaderpoolLock": "tooz_lock"})
