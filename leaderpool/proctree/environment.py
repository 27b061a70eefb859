"""The environment a contained command gets: its parent's, less the variables withheld from it
(the Redis credentials, unless ``--pass-env`` names them), plus what the caller adds."""

from __future__ import annotations

from collections.abc import Collection, Mapping


def command_environment(
    base: Mapping[str, str],
    *,
    added: Mapping[str, str] | None = None,
    withheld: Collection[str] = (),
    passed: Collection[str] = (),
) -> dict[str, str]:
    """``base`` without the ``withheld`` names (but for those ``passed``), then ``added``."""
    dropped = set(withheld) - set(passed)
    env = {name: value for name, value in base.items() if name not in dropped}
    env.update(added or {})
    return env
