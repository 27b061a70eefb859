"""``python -m leaderpool.testing.chaos [--seed N] [--duration S] [--ttl S] [--out FILE.md]``:
a chaos run against a throw-away redis-server; prints the seed first and the summary last,
writes the summary to ``--out`` (the timeline, as JSON, to ``--timeline``; the leader's work as
a Jepsen history, EDN, to ``--history``); exits 1 if a promise was broken. ``--singletons N``: the
run of N singletons over the pool instead (:mod:`.singleton_runner`), rebalances among its faults."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from leaderpool.console.args import OneLineParser
from leaderpool.testing.chaos import faults, report, sentinel_lag, singleton_report, singleton_runner
from leaderpool.testing.chaos.chaos_runner import RunConfig, run


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in faults.FAULTS and k not in singleton_runner.REBALANCES]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind {', '.join(unknown) or text!r}; known: {', '.join(faults.FAULTS)}"
        )
    return kinds


def parser() -> OneLineParser:
    p = OneLineParser(prog="python -m leaderpool.testing.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, help="the run's seed (default: from the time; printed)")
    p.add_argument(
        "--duration", type=_positive, default=60.0, metavar="SECONDS", help="inject faults for this long (60)"
    )
    p.add_argument("--faults", type=int, default=10_000, metavar="N", help="stop after N faults")
    p.add_argument("--ttl", type=_positive, default=1.0, metavar="SECONDS", help="the workers' lease (1)")
    p.add_argument("--members", type=int, default=None, choices=range(2, 21), metavar="N", help="workers (5)")
    p.add_argument(
        "--kinds",
        type=_kinds,
        default=faults.KINDS,
        help=f"comma-separated fault kinds ({','.join(faults.KINDS)}; also {','.join(faults.ON_DEMAND)})",
    )
    p.add_argument("--out", type=Path, metavar="FILE.md", help="write the summary here")
    p.add_argument("--timeline", type=Path, metavar="FILE.json", help="write the raw timeline here (for the checker)")
    p.add_argument(
        "--history", type=Path, metavar="FILE.edn", help="write the leader's work as a Jepsen history (EDN) here"
    )
    p.add_argument(
        "--sentinel-lag",
        action="store_true",
        help="run the Sentinel scenario instead: a failover to a lagging replica, without and with --wait-replicas 1",
    )
    p.add_argument(
        "--singletons", type=int, choices=range(1, 1001), metavar="N",
        help="run N singletons over the pool instead (--members 4 unless given), with rebalances "
        f"({','.join(singleton_runner.REBALANCES)}) among the faults; checked per singleton",
    )  # fmt: skip
    p.add_argument("--workdir", type=Path, metavar="DIR", help="keep the act logs and the workers' stderr here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.sentinel_lag:
        outcomes = [sentinel_lag.run_lag(w, ttl_s=args.ttl, workdir=args.workdir) for w in (0, 1)]
        text = "Sentinel failover to a lagging replica\n\n" + sentinel_lag.table(outcomes)
        print(text, flush=True)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        return 0 if all(sentinel_lag.safe(o) for o in outcomes) else 1
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000
    if args.singletons is not None:
        return _singletons(args, seed)
    if any(k in singleton_runner.REBALANCES for k in args.kinds):
        parser().error(f"argument --kinds: {','.join(singleton_runner.REBALANCES)} only apply with --singletons")
    args.members = args.members or 5
    config = RunConfig(
        seed=seed, duration_s=args.duration, max_faults=args.faults, members=args.members, ttl_s=args.ttl,
        workdir=args.workdir, kinds=args.kinds,
    )  # fmt: skip
    timeline, findings = run(config)
    print(report.summary(timeline, findings), flush=True)
    if args.out is not None:
        command = (
            f"python -m leaderpool.testing.chaos --seed {seed} --duration {args.duration:g} --ttl {args.ttl:g} "
            f"--members {args.members} --kinds {','.join(args.kinds)} --out {args.out}"
        )
        report.write(args.out, timeline, findings, command)
        print(f"written to {args.out}")
    if args.timeline is not None:
        report.write_timeline(args.timeline, timeline)
    if args.history is not None:
        report.write_history(args.history, timeline)
    return 0 if findings.safe else 1


def _singletons(args: argparse.Namespace, seed: int) -> int:
    kinds = args.kinds if args.kinds != faults.KINDS else singleton_runner.KINDS
    lost = [k for k in kinds if k not in singleton_runner.KINDS]
    if lost:
        known = ",".join(singleton_runner.KINDS)
        parser().error(f"argument --kinds: {','.join(lost)} not in the singletons' run ({known})")
    members = args.members or 4
    config = singleton_runner.SingletonRunConfig(
        seed=seed, duration_s=args.duration, max_faults=args.faults, members=members, singletons=args.singletons,
        ttl_s=args.ttl, workdir=args.workdir, kinds=kinds,
    )  # fmt: skip
    timeline, findings = singleton_runner.run(config)
    print(singleton_report.summary(timeline, findings), flush=True)
    if args.out is not None:
        command = (
            f"python -m leaderpool.testing.chaos --singletons {args.singletons} --seed {seed} "
            f"--duration {args.duration:g} --ttl {args.ttl:g} --members {members} --out {args.out}"
        )
        singleton_report.write(args.out, timeline, findings, command)
        print(f"written to {args.out}")
    if args.timeline is not None:
        singleton_report.write_timeline(args.timeline, timeline)
    return 0 if findings.safe else 1


if __name__ == "__main__":
    sys.exit(main())
