"""The one-command parse tree (built for speed: ``status`` starts faster) reads every command line
as the whole tree does, and leaves errors to it."""

from __future__ import annotations

import argparse

import pytest

from leaderpool.cli import parser

LINES = [
    ["status"],
    ["--redis", "redis://h:1/0", "status", "--json", "--pool", "a", "--pool", "b", "--all"],
    ["status", "--watch", "--count", "2", "--interval", "0.5"],
    ["--prefix", "pfx", "history", "p", "--count", "5", "--json"],
    ["resign", "p", "--timeout", "3"],
    ["evict", "p", "m"],
    ["forget", "p", "--force"],
    ["doctor", "--json", "--strict"],
    ["schedules", "--pool", "p"],
    ["whereis", "n", "--json"],
    ["names"],
    ["unregister", "n"],
    ["lock", "r", "--ttl", "5", "--", "echo", "hi"],
    ["acl", "--user", "u", "--cluster"],
    ["demo", "--ttl", "1"],
    ["dashboard", "--port", "0", "--allow-actions"],
    ["submit", "--create", "p", "{}"],
    ["call", "p", "1", "--member", "m", "--timeout", "2"],
    ["multicall", "p", "1"],
    ["jobs", "p", "--json"],
    ["requeue", "p", "--all"],
    ["drop", "p", "1-0", "2-0"],
    ["history", "status"],  # a pool named like a command: the whole tree parses it
]


def test_the_command_list_is_the_parsers() -> None:
    """COMMANDS, which picks the one-command tree, lists exactly the parser's commands, in its order."""
    full = parser.build_parser()
    subs = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(parser.COMMANDS) == [name for a in subs for name in a.choices]


@pytest.mark.parametrize("argv", LINES, ids=" ".join)
def test_one_command_tree_reads_a_line_as_the_whole_tree(argv: list[str]) -> None:
    args, command = parser.split_command(argv)
    assert (parser.build_parser().parse_args(args), command) == parser.parse(argv)


def test_an_error_comes_from_the_whole_tree(capsys: pytest.CaptureFixture[str]) -> None:
    """A value that names a command, then a bad command: the invalid choice lists every command."""
    with pytest.raises(SystemExit) as exited:
        parser.parse(["--prefix", "status", "frobnicate"])
    assert 2 == exited.value.code
    assert "'drop')" in capsys.readouterr().err
