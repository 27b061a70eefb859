"""Histories in Jepsen's EDN, one map per line."""

from __future__ import annotations

from leaderpool.testing.history import edn
from leaderpool.testing.history.ops import NEMESIS, Op


def test_each_event_is_one_map_with_jepsens_keys_and_ours() -> None:
    history = [
        Op("invoke", "write", 3, "m1/101", 1000.0, 5.0, "register", "101-1000", 4),
        Op("ok", "write", 3, "m1/101", 1000.001, 5.000123, "register", "101-1000", 4),
        Op("info", "flushall", None, NEMESIS, 1000.5, 5.5),
        Op("invoke", "incr", None, "m2/202", 1001.0, 6.0, "counter", "202-1000", 5),
        Op("ok", "incr", [7, 8], "m2/202", 1001.1, 6.1, "counter", "202-1000", 5),
    ]
    lines = edn.dumps(history).splitlines()
    assert 5 == len(lines)
    assert lines[0].startswith("{:type :invoke, :f :write, :value 3, :process 0, :time 0, :index 0, :key :register")
    assert ":time 123000, :index 1" in lines[1] and ':incarnation "101-1000"' in lines[1] and ":term 4" in lines[1]
    assert ":process :nemesis" in lines[2] and ":value nil" in lines[2]
    assert ":value [7 8], :process 1, :time 1100000000" in lines[4]


def test_strings_are_escaped() -> None:
    assert '"a\\"b\\\\c"' == edn.value('a"b\\c')
