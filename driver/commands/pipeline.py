"""The pipeline's own commands: migrate, refresh, health, seed, simulate."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from driver.commands.args import EXIT_CRON_UNAVAILABLE, EXIT_UNHEALTHY, add_dsn, count, share, timestamp
from driver.core import db, output
from driver.core.migrate import migrate
from driver.core.output import render_table
from driver.simulation.deltas import stage_window


def cmd_migrate(args: argparse.Namespace) -> int:
    """``globalcart migrate``: installs or updates the schema, routines, grants and pg_cron (exit 3:
    pg_cron unavailable)."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        report = migrate(conn, with_cron=not args.no_cron)
    for name in report.applied:
        print(f"applied {name}")
    for signature in report.dropped:
        print(f"dropped {signature}: no routine file defines it any more")
    print(
        f"schema up to date: {len(report.applied)} migration(s) applied now, {report.already_applied} already; "
        f"{report.routine_files} function/trigger file(s) re-applied"
    )
    if report.cron is None:
        print("pg_cron: skipped (--no-cron)")
        return 0
    if report.cron.blocking:
        print(report.cron.message, file=sys.stderr)
        return EXIT_CRON_UNAVAILABLE
    print(report.cron.message)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """``globalcart refresh``: one run_incremental_refresh() and its per-source counts (exit 1 when it failed)."""
    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        db.require_schema(conn)
        row = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()
        sources = [s.name for s in db.sources(conn)]
    assert row is not None
    summary = row[0]
    if args.json:
        print(json.dumps(summary, indent=2))
    elif summary.get("status") == "failed":
        print(f"globalcart: {output.format_summary(summary, sources)}", file=sys.stderr)
    else:
        print(output.format_summary(summary, sources))
    return 1 if summary.get("status") == "failed" else 0


def _age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    seconds = max(0, int((now - value).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def cmd_health(args: argparse.Namespace) -> int:
    """``globalcart health``: pipeline_health per source (exit 4 when a source is lagging or failing)."""
    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        db.require_schema(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT *, clock_timestamp() AS checked_at FROM globalcart.pipeline_health")
            names = [c.name for c in cur.description or []]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    unhealthy = [r["source_name"] for r in rows if r["status"] != "ok"]
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "checked_at"} for r in rows], indent=2, default=str))
    else:
        now = rows[0]["checked_at"] if rows else datetime.now(UTC)
        print(render_table(
            ["source", "status", "staged", "deferred", "oldest staged", "watermark", "rejected 24h"],
            [[r["source_name"], r["status"], f"{r['staged_rows']:,}", f"{r['deferred_rows']:,}",
              _age(r["oldest_staged_at"], now), f"{r['watermark_ts']:%Y-%m-%d %H:%M:%S}" if r["watermark_ts"] else "",
              f"{r['rejected_24h']:,}"] for r in rows],
        ))  # fmt: skip
        first = rows[0] if rows else {}
        last_ok, last_failed = first.get("last_ok_run_at"), first.get("last_failed_run_at")
        print(f"last ok run: {f'{_age(last_ok, now)} ago' if last_ok else 'none'}")
        if last_failed:
            print(f"last failed run: {_age(last_failed, now)} ago: {first.get('last_error')}")
        for problem in dict.fromkeys(r["feed_problem"] for r in rows if r.get("feed_problem")):
            print(f"CDC feed failing: {problem}")
        print("healthy" if not unhealthy else f"not healthy: {', '.join(unhealthy)}")
    return EXIT_UNHEALTHY if unhealthy else 0


def cmd_seed(args: argparse.Namespace) -> int:
    """``globalcart seed``: a simulated base history through staging and the refresh."""
    from driver.core.progress import ProgressBar
    from driver.simulation.seed import seed_history

    dsn = db.resolve_dsn(args.dsn)
    with db.connect(dsn) as conn:
        db.require_schema(conn)
        report = seed_history(
            conn, dsn, orders=args.orders, seed=args.seed, as_of=args.as_of or datetime.now(UTC), days=args.days,
            progress=None if args.quiet else ProgressBar("seed"),
        )  # fmt: skip
    print(
        f"seeded {report.orders:,} orders ({report.rows_staged:,} rows through staging, {report.refreshes} refreshes, "
        f"{report.rejected} rejected) in {report.seconds:.1f} s"
    )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """``globalcart simulate``: stages the changes of a time window (not refreshed)."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn)
        report = stage_window(
            conn, since=args.since, until=args.until, seed=args.seed, orders=args.orders,
            duplicates=args.duplicates, out_of_order=args.out_of_order, bad_rows=args.bad_rows,
        )  # fmt: skip
    print(report.table())
    print("apply with: python -m driver refresh (or let the pg_cron schedule do it)")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
    p = commands.add_parser(
        "migrate",
        help="install or update the schema, functions, triggers and pg_cron",
        description="Apply db/migrations once each, re-apply db/functions and db/triggers, create pg_cron. "
        "Safe to run again. Exit 3: schema installed but pg_cron unavailable (the message says what to change).",
    )
    add_dsn(p)
    p.add_argument("--no-cron", action="store_true", help="do not set up pg_cron (schema only)")
    p.set_defaults(func=cmd_migrate)

    p = commands.add_parser(
        "refresh",
        help="run globalcart.run_incremental_refresh() once and print its summary",
        description="Apply everything staged, in one transaction, and print the per-source counts.",
    )
    add_dsn(p)
    p.add_argument("--json", action="store_true", help="print the summary as the jsonb the function returns")
    p.set_defaults(func=cmd_refresh)

    p = commands.add_parser(
        "health",
        help="is the pipeline healthy, and how far behind is it? (exit 4 when not)",
        description="Print globalcart.pipeline_health: per source the rows staged and deferred, the oldest staged "
        "row's age, the watermark, rejects of the last 24 hours, and the status (ok, lagging, failing), with the "
        "last ok and failed runs. Exit status 0 when every source is ok, 4 when one is lagging or failing (for "
        "monitoring probes), 1 when the database cannot be read.",
    )
    add_dsn(p)
    p.add_argument("--json", action="store_true", help="print the rows of the view as JSON")
    p.set_defaults(func=cmd_health)

    p = commands.add_parser("seed", help="load a simulated base history through staging and the refresh",
                            description="Generate customers, products and ORDERS orders over the past DAYS days, with "
                            "items, payments, shipments, returns and funnel sessions; COPY them to staging in chunks "
                            "and refresh as they land. Deterministic for a given --seed and --as-of.")  # fmt: skip
    add_dsn(p)
    p.add_argument("--orders", type=count, default=100_000, help="orders to generate (default: 100000)")
    p.add_argument("--days", type=count, default=90, help="history length in days (default: 90)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument("--as-of", type=timestamp, metavar="TS", help="the history ends here (default: now)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_seed)

    p = commands.add_parser("simulate", help="stage the deltas of a time window (no refresh)",
                            description="Stage what changed between --since and --until: new orders with items, "
                            "payments, shipments and funnel events; orders moving PAID->SHIPPED->DELIVERED->COMPLETED; "
                            "late returns; shipments turning late; plus duplicates, older versions and bad "
                            "rows.")  # fmt: skip
    add_dsn(p)
    p.add_argument("--since", type=timestamp, metavar="TS", help="window start (default: the orders watermark)")
    p.add_argument("--until", type=timestamp, metavar="TS", help="window end (default: now)")
    p.add_argument("--orders", type=count, help="new orders (default: the recent order rate over the window)")
    p.add_argument("--duplicates", type=share, default=0.05, help="share of rows sent twice (default: 0.05)")
    p.add_argument(
        "--out-of-order",
        type=share,
        default=0.05,
        help="share of changed orders whose older version arrives after the new one (default: 0.05)",
    )
    p.add_argument("--bad-rows", type=count, default=0, help="invalid rows to add, for the quarantine (default: 0)")
    p.add_argument("--seed", type=int, default=361, help="random seed (default: 361)")
    p.set_defaults(func=cmd_simulate)
