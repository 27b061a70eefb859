"""``leaderpool-cli whereis NAME``, ``names`` and ``unregister NAME``: the unique-name registry
(:mod:`leaderpool.names.registry`) from a shell, one script each on a one-shot client."""

from __future__ import annotations

import json
from typing import TextIO

from leaderpool.cli import status
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import Blocking, run
from leaderpool.names.registry import NameOwner, NameStore
from leaderpool.util.printable import printable


def _value(owner: NameOwner) -> str:
    return "-" if owner.value is None else owner.value


def whereis(client: Blocking, name: str, prefix: str, as_json: bool, out: TextIO) -> int:
    found = run(NameStore(client, prefix).read([name]))
    if not found:
        raise Failure(f"nobody holds name {name} (prefix {prefix})")
    owner = found[0]
    if as_json:
        out.write(json.dumps(owner.as_json(), separators=(",", ":")) + "\n")
    else:
        line = (
            f"{name}: member {owner.member} of pool {owner.pool} on node {owner.node}, "
            f"value {_value(owner)}, lease {owner.lease_ms / 1000:.1f}s left"
        )
        out.write(printable(line) + "\n")
    return 0


def list_names(client: Blocking, prefix: str, as_json: bool, out: TextIO) -> int:
    owners = run(NameStore(client, prefix).read())
    if as_json:
        rows = [{**o.as_json(), "lease_ms": o.lease_ms} for o in owners]
        out.write(json.dumps({"names": rows}, separators=(",", ":")) + "\n")
        return 0
    if not owners:
        out.write(f"no names are held (prefix {prefix})\n")
        return 0
    table = [["NAME", "MEMBER", "POOL", "NODE", "LEASE", "VALUE"]]
    for o in owners:
        table.append([o.name, o.member, o.pool, o.node, f"{o.lease_ms / 1000:.1f}s", _value(o)])
    out.write(f"{len(owners)} name(s) held (prefix {prefix})\n")
    out.write("\n".join("  " + line for line in status.table(table)) + "\n")
    return 0


def unregister(client: Blocking, name: str, prefix: str, out: TextIO) -> int:
    owner = run(NameStore(client, prefix).unregister(name, None))
    if owner is None:
        raise Failure(f"nobody holds name {name} (prefix {prefix})")
    out.write(
        printable(f"removed name {name} from member {owner.member} of pool {owner.pool}") + "\n"
        "(a standby takes it at once; the old holder learns at its next heartbeat)\n"
    )
    return 0
