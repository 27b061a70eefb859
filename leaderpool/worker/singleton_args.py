"""The worker's singleton flags (``--singletons NAME,NAME,...``, ``--singletons-count N``): the
task (or the ``--exec`` command) runs once per singleton this member owns, instead of while it
leads (:mod:`leaderpool.worker.singleton_work`). :mod:`leaderpool.worker.settings` adds them to its
parser and calls :func:`parse_singletons`."""

from __future__ import annotations

import argparse

from leaderpool.console.args import Options, UsageError, count, names
from leaderpool.errors import ConfigError
from leaderpool.util.naming import validate_name

MAX_SINGLETONS = 100_000
"""More would not be a pool's singletons but a queue's jobs (and a listing no one reads)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("singletons", "many singletons spread over the pool, each on one member at a time")
    g.add_argument(
        "--singletons", metavar="NAME,NAME,...", action="append",
        help="run the --task (or --exec command) once per singleton of these this member owns "
        "(repeatable) [LEADERPOOL_SINGLETONS=a,b]",
    )  # fmt: skip
    g.add_argument(
        "--singletons-count", metavar="N",
        help="the singletons shard-0 .. shard-N-1, as --singletons (0) [LEADERPOOL_SINGLETONS_COUNT]",
    )  # fmt: skip
    g.add_argument(
        "--singletons-weight", metavar="W",
        help="this member's share of the singletons against the others' (1; 2: twice as many) "
        "[LEADERPOOL_SINGLETONS_WEIGHT]",
    )  # fmt: skip
    g.add_argument(
        "--singletons-max-moves", metavar="N",
        help="while this member leads the pool, at most N running singletons handed over at once "
        "(1; more fills a member that joins a big pool sooner) [LEADERPOOL_SINGLETONS_MAX_MOVES]",
    )  # fmt: skip


def parse_weight(o: Options, runs_singletons: bool) -> float:
    """``--singletons-weight``: a number > 0, only with singletons to run."""
    where = ("singletons_weight", "--singletons-weight", "LEADERPOOL_SINGLETONS_WEIGHT")
    weight = o.get(*where, _weight, default=1.0)
    _only_with_singletons(o, where, runs_singletons)
    return weight


def parse_max_moves(o: Options, runs_singletons: bool) -> int:
    """``--singletons-max-moves``: an integer >= 1, only with singletons to run."""
    where = ("singletons_max_moves", "--singletons-max-moves", "LEADERPOOL_SINGLETONS_MAX_MOVES")
    max_moves = o.get(*where, _at_least_one, default=1)
    _only_with_singletons(o, where, runs_singletons)
    return max_moves


def _only_with_singletons(o: Options, where: tuple[str, str, str], runs_singletons: bool) -> None:
    found = o.source(*where)
    if found is not None and not runs_singletons:
        raise UsageError(found[0], "only applies with --singletons or --singletons-count")


def _at_least_one(raw: object) -> int:
    value = count(raw)
    if value < 1:
        raise ValueError(f"must be an integer >= 1, got {raw!r}")
    return value


def _weight(raw: object) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError(f"must be a number > 0, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"must be a number > 0, got {raw!r}")
    return value


def parse_singletons(o: Options, *, scheduled: bool) -> tuple[tuple[str, ...], int]:
    """The singleton names and count; raises :class:`UsageError` naming the bad flag."""
    given: list[str] = o.get("singletons", "--singletons", "LEADERPOOL_SINGLETONS", _names, default=[])
    how_many = o.get("singletons_count", "--singletons-count", "LEADERPOOL_SINGLETONS_COUNT", count, default=0)
    if how_many > MAX_SINGLETONS:
        raise UsageError(_where(o, "singletons_count", "--singletons-count", "LEADERPOOL_SINGLETONS_COUNT"),
                         f"must be at most {MAX_SINGLETONS}, got {how_many}")  # fmt: skip
    if (given or how_many) and scheduled:
        where = _where(o, "singletons", "--singletons", "LEADERPOOL_SINGLETONS") if given else "--singletons-count"
        raise UsageError(where, "does not apply with --every or --cron (a singleton's task runs while it is owned)")
    clash = sorted(set(given) & {f"shard-{i}" for i in range(how_many)})
    if clash:
        raise UsageError(
            _where(o, "singletons", "--singletons", "LEADERPOOL_SINGLETONS"),
            f"{clash[0]!r} is one of --singletons-count's names already",
        )
    return tuple(given), how_many


def _names(raw: object) -> list[str]:
    """Each item of a repeated flag may itself be ``a,b,c``."""
    items = [part for item in (raw if isinstance(raw, list) else [raw]) for part in names(str(item))]
    if not items:
        raise ValueError("must name at least one singleton")
    out = []
    for item in items:
        try:
            out.append(validate_name("singleton", item))
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("singleton ")) from None
    dup = next((n for i, n in enumerate(out) if n in out[:i]), None)
    if dup is not None:
        raise ValueError(f"names {dup!r} twice")
    return out


def _where(o: Options, dest: str, flag: str, env: str) -> str:
    found = o.source(dest, flag, env)
    return found[0] if found else flag
