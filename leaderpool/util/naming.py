"""The one rule for names that become parts of Redis keys: pools, members, prefixes, names,
lock resources, schedules and tooz groups; a prefix also may not nest inside another one."""

from __future__ import annotations

import re

from leaderpool.errors import ConfigError
from leaderpool.util.constants import MAX_NAME_LENGTH

# printable ASCII without spaces or braces (a brace would change a key's Redis Cluster hash tag)
_NAME_RE = re.compile(r"^[!-z|~]+$")

PREFIX_FORBIDDEN = ":*?[]\\"
"""Not in a prefix: a ``:`` would nest it inside another (the ACL pattern ``~a:*`` of prefix
``a`` would match every key of prefix ``a:b``: its user could read and delete them), and a Redis
glob character would make the ACL pattern and the SCAN pattern match more than the prefix."""


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a usable pool/member/prefix name, else raise ``ConfigError``."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{kind} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigError(f"{kind} is {len(value)} characters long, at most {MAX_NAME_LENGTH}")
    if not _NAME_RE.match(value):
        raise ConfigError(f"{kind} {value!r} must be printable ASCII without spaces or braces")
    if kind == "prefix" and any(c in PREFIX_FORBIDDEN for c in value):
        raise ConfigError(
            f"prefix {value!r} must not hold ':' or a glob character (* ? [ ] \\): another prefix's keys "
            "(and ACL user) could nest inside it"
        )
    return value
