"""The benchmark command (the benchmarks themselves are driver.bench)."""

from __future__ import annotations

import argparse

from driver.commands.args import PROJECT_DIR, count
from driver.core.errors import DriverError


def cmd_bench(args: argparse.Namespace) -> int:
    """``globalcart bench``: checks the options, runs the benchmark asked for and prints its figures."""
    from driver.bench.refresh import run_bench

    if args.small >= args.large:
        raise DriverError("--small must be smaller than --large.", 2)
    if args.rounds < 1:
        raise DriverError("--rounds must be at least 1.", 2)
    if args.cdc:
        from driver.bench.cdc import run_cdc_bench

        if args.freshness_seconds < 1 or args.cdc_rate <= 0:
            raise DriverError("--cdc needs --freshness-seconds of 1 or more and a --cdc-rate above 0.", 2)
        print(run_cdc_bench(args.freshness_seconds, args.cdc_rate, args.cdc_warmup, args.seed).table())
        return 0
    if args.citus:
        from driver.bench.citus import run_citus_bench

        if args.freshness_seconds and args.freshness_rate < 1:
            raise DriverError("--freshness-rate must be at least 1 order a second.", 2)
        print(run_citus_bench(args.small, args.large, args.delta_orders, seed=args.seed, rounds=args.rounds,
                              freshness_seconds=args.freshness_seconds, freshness_rate=args.freshness_rate).table())
        return 0
    if args.freshness_rate < 1:
        raise DriverError("--freshness-rate must be at least 1 order a second.", 2)
    if args.sustained_from < 1:
        raise DriverError("--sustained-from must be at least 1 order a second.", 2)
    from driver.bench.dbt import find_dbt

    dbt = None if args.no_dbt else find_dbt(args.dbt, PROJECT_DIR)
    figures = run_bench(args.small, args.large, args.delta_orders, seed=args.seed, rounds=args.rounds,
                        freshness_seconds=args.freshness_seconds, freshness_rate=args.freshness_rate,
                        sustained_seconds=args.sustained_seconds, sustained_from=args.sustained_from,
                        dbt=dbt)  # fmt: skip
    print(figures.table())
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
    p = commands.add_parser("bench", help="measure the refresh (prints figures; takes minutes)",
                            description="Seed a small and a large warehouse on a throwaway server and time the same "
                            "delta into each, against a bare guarded upsert and a full reload.")  # fmt: skip
    p.add_argument("--small", type=count, default=100_000, help="orders of the small warehouse (default: 100000)")
    p.add_argument("--large", type=count, default=1_000_000, help="orders of the large warehouse (default: 1000000)")
    p.add_argument("--delta-orders", type=count, default=3_000, help="new orders per delta (default: 3000)")
    p.add_argument("--rounds", type=count, default=3, help="deltas refreshed into each warehouse (default: 3)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument(
        "--freshness-seconds",
        type=count,
        default=60,
        metavar="S",
        help="how long producers commit orders for the freshness figures; 0 skips them (default: 60)",
    )
    p.add_argument(
        "--freshness-rate",
        type=count,
        default=200,
        metavar="N",
        help="orders a second the producers commit, with items and payments (default: 200)",
    )
    p.add_argument("--sustained-seconds", type=count, default=60, metavar="S",
                   help="seconds at each rate of the sustained-rate search (the producer's rate doubled while follow "
                   "mode keeps p95 staged -> visible within 5 s, then the gap to the first rate that failed halved "
                   "twice); 0 skips it (default: 60)")  # fmt: skip
    p.add_argument("--sustained-from", type=count, default=1000, metavar="N",
                   help="the sustained-rate search's first rate, orders a second (default: 1000)")  # fmt: skip
    p.add_argument("--dbt", metavar="PATH",
                   help="the dbt executable (dbt-core and dbt-postgres 1.11) for the comparison with dbt on one delta "
                   "of orders (default: .venv-dbt/bin/dbt, which .ci/setup.sh makes, else dbt on PATH; without "
                   "either the comparison is skipped, and said so)")  # fmt: skip
    p.add_argument("--no-dbt", action="store_true", help="skip the comparison with dbt")
    p.add_argument("--citus", action="store_true",
                   help="instead: the same deltas on one server and on a Citus coordinator with two workers started "
                   "here — also deltas of one order and of a minute of a shop, and follow-mode freshness at "
                   "--freshness-rate for --freshness-seconds (Citus must be installed; see docs/citus.md)")  # fmt: skip
    p.add_argument("--cdc", action="store_true",
                   help="instead: freshness through the CDC feed — a shop database and a warehouse attached to it on "
                   "a server started here, the follow loop refreshing, the shop's workload for --freshness-seconds; "
                   "prints p50 / p95 / max of source commit -> fact visible")  # fmt: skip
    p.add_argument("--cdc-rate", type=float, default=20.0, metavar="N",
                   help="with --cdc: orders a second the shop places, each moved on in transactions of its own "
                   "(default: 20)")  # fmt: skip
    p.add_argument("--cdc-warmup", type=float, default=20.0, metavar="S",
                   help="with --cdc: seconds of workload before the timed run (default: 20)")  # fmt: skip
    p.set_defaults(func=cmd_bench)
