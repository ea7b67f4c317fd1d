"""Command line of GlobalCart 360: ``python -m driver <command>`` (also installed as ``globalcart``).

The driver holds no refresh logic: it applies the SQL, calls the database's functions and
prints what they return. Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from driver import citus, db, history, output
from driver.deltas import stage_window
from driver.embedded import EmbeddedServerError
from driver.errors import DriverError, connection_lost, describe_sql_error, first_line
from driver.migrate import SQL_DIR, migrate
from driver.output import fmt_number, render_table

EXIT_CRON_UNAVAILABLE = 3
EXIT_UNHEALTHY = 4


def _add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        metavar="URL",
        help="database to use, e.g. postgresql://user:pass@localhost:5432/globalcart (default: $DATABASE_URL)",
    )


def cmd_migrate(args: argparse.Namespace) -> int:
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


def cmd_distribute(args: argparse.Namespace) -> int:
    if args.shard_count is not None and args.shard_count < 1:
        raise DriverError("--shard-count must be at least 1.", 2)
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        report = citus.distribute(conn, shard_count=args.shard_count)
    for placement in report.created:
        how = f"distributed by {placement.column}" if placement.kind == "distributed" else "reference table"
        with_ = f", colocated with {placement.colocate_with}" if placement.colocate_with else ""
        print(f"{placement.table}: {how}{with_}")
    print(f"distributed: {len(report.created)} table(s) now, {len(report.already)} already; the rest stays local")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
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


def _timestamp(text: str) -> datetime:
    """An ISO 8601 time (a naive one is UTC), or 'now'."""
    if text == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601, e.g. 2026-11-28T10:00:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _country(text: str) -> str:
    if len(text) != 2 or not text.isalpha():
        raise argparse.ArgumentTypeError(f"{text!r} is not a two-letter country code (e.g. DE)")
    return text.upper()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give 0 or more")
    return value


def _duration(text: str) -> timedelta:
    from driver.oltp import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _print_kpis(conn: psycopg.Connection, snapshot_id: int) -> None:
    rows = conn.execute(
        "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s ORDER BY kpi_order, kpi_name",
        (snapshot_id,),
    ).fetchall()
    print(render_table(["kpi", "value"], [[name, fmt_number(value)] for name, value in rows]))


def cmd_snapshot(args: argparse.Namespace) -> int:
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn)
        snapshot_id = conn.execute("SELECT globalcart.snapshot_kpis(%s)", (args.label,)).fetchone()[0]
        conn.commit()
        print(f"snapshot {snapshot_id} labelled {args.label!r}")
        if conn.execute("SELECT has_table_privilege('globalcart.kpi_snapshots', 'SELECT')").fetchone()[0]:
            _print_kpis(conn, snapshot_id)
        else:
            print("(its values are for globalcart_reader members: globalcart compare, or SELECT … FROM "
                  "globalcart.kpi_snapshots)")  # fmt: skip
    return 0


def _slice_text(args: argparse.Namespace) -> str:
    span = (
        f"orders from {args.from_ts.isoformat() if args.from_ts else 'the first'} "
        f"to {args.to_ts.isoformat() if args.to_ts else 'the last'} (sessions by first event)"
    )
    return f"{span}, {'country ' + args.country if args.country else 'every country'}, " \
           f"{'channel ' + args.channel if args.channel else 'every channel'}"  # fmt: skip


def cmd_kpis(args: argparse.Namespace) -> int:
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn, "globalcart.kpi_daily")
        rows = conn.execute(
            "SELECT kpi_name, kpi_value FROM globalcart.kpi_values(%s, %s, %s, %s) ORDER BY kpi_order",
            (args.from_ts, args.to_ts, args.country, args.channel),
        ).fetchall()
    print(f"KPIs of {_slice_text(args)}")
    values = dict(rows)
    if args.from_ts and args.to_ts and args.from_ts >= args.to_ts:
        print("empty slice: --from is not before --to, so no order or session is in it (counts 0, ratios n/a).")
    elif not values.get("orders") and not values.get("units") and values.get("conversion_rate") is None:
        print("empty slice: no order or session matches it (counts 0, ratios n/a); check the bounds, country and "
              "channel.")  # fmt: skip
    print(render_table(["kpi", "value"], [[name, fmt_number(value)] for name, value in rows]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn)
        rows = conn.execute("SELECT * FROM globalcart.compare_kpis(%s, %s)", (args.before, args.after)).fetchall()
    print(output.format_comparison(rows, args.before, args.after))
    return 0


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
    from driver.progress import ProgressBar
    from driver.seed import seed_history

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
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn)
        report = stage_window(
            conn, since=args.since, until=args.until, seed=args.seed, orders=args.orders,
            duplicates=args.duplicates, out_of_order=args.out_of_order, bad_rows=args.bad_rows,
        )  # fmt: skip
    print(output.format_delta(report))
    print("apply with: python -m driver refresh (or let the pg_cron schedule do it)")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from driver.schedule import schedule

    done = schedule(db.resolve_dsn(args.dsn), args.every, follow=args.follow, run_as=args.run_as)
    where = (
        ""
        if done.cron_database == done.warehouse
        else f" (registered in '{done.cron_database}' for '{done.warehouse}')"
    )
    what = (
        "CALL globalcart.refresh_for() every minute (follow mode: a refresh every second while rows arrive)"
        if args.follow
        else f"the refresh at '{args.every}', bounded by max_run_time"
    )
    print(f"scheduled: pg_cron job {done.job_id} 'globalcart-incremental-refresh' runs {what} as {args.run_as}"
          f"{where}; daily jobs purge history (purge_history) and cron.job_run_details older than 7 days")  # fmt: skip
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    from driver.access import grant, revoke

    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        db.require_schema(conn, "globalcart.etl_refresh_lock")
        if args.command == "grant":
            after = grant(conn, args.user, args.role, args.password_env)
        else:
            after = revoke(conn, args.user, args.role)
    print(f"{args.user}: {'member of ' + ', '.join(after) if after else 'member of no globalcart role'}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    from driver.schedule import unschedule

    existed = unschedule(db.resolve_dsn(args.dsn))
    print("unscheduled: the refresh no longer runs by pg_cron" if existed else "nothing to unschedule")
    return 0


def _source_dsn(dsn: str | None) -> str:
    resolved = dsn or os.environ.get("SOURCE_DATABASE_URL")
    if not resolved:
        raise DriverError("no source database given: pass --dsn postgresql://user@host:port/shop (source commands) or "
                          "--source-dsn (cdc attach), or set SOURCE_DATABASE_URL.", 2)  # fmt: skip
    return resolved


def cmd_source(args: argparse.Namespace) -> int:
    from driver import oltp

    dsn = _source_dsn(args.dsn)
    with db.connect(dsn) as conn:
        if args.action == "init":
            tables = oltp.init_source(conn, args.id_start)
            print(f"source ready: the shop schema and publication {oltp.PUBLICATION} ({tables} tables) in "
                  f"{db.describe_target(dsn)}; attach a warehouse with globalcart cdc attach --source-dsn "
                  "URL")  # fmt: skip
            return 0
        if args.rate <= 0:
            raise DriverError("--rate must be more than 0 orders a second.", 2)
        report = oltp.run_workload(conn, rate=args.rate, seconds=args.duration.total_seconds(), seed=args.seed,
                                   bad_rows=args.bad_rows)  # fmt: skip
    print(report.line())
    return 0


def cmd_cdc(args: argparse.Namespace) -> int:
    from driver import cdc

    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        if args.action == "attach":
            report = cdc.attach(conn, _source_dsn(args.source_dsn))
            print(f"attached: subscription {cdc.SUBSCRIPTION} (slot {report.slot} on the source) mirrors "
                  f"{', '.join(report.tables)} (bronze tables) and stages every change; the source's rows "
                  + ("were copied first." if report.copied else "are still being copied (globalcart cdc status "
                     "shows the tables left).")
                  + " Refresh as usual (the follow mode keeps the facts seconds behind).")  # fmt: skip
            return 0
        if args.action == "detach":
            report = cdc.detach(conn)
            print(f"detached: subscription {cdc.SUBSCRIPTION} and the bronze tables dropped"
                  + (f", slot {report.slot} dropped on the source" if report.slot_dropped else ""))  # fmt: skip
            if report.slot_problem:
                raise DriverError(report.slot_problem)
            return 0
        state = cdc.status(conn)
    if not state.attached:
        print("not attached: no CDC subscription in this warehouse (globalcart cdc attach --source-dsn URL)")
        return EXIT_UNHEALTHY
    if args.json:
        print(json.dumps(state.__dict__, indent=2, default=str))
    else:
        rows = [
            ["subscription", f"{cdc.SUBSCRIPTION} ({'enabled' if state.enabled else 'disabled'})"],
            ["apply worker", "running" if state.worker_running else "not running"],
            ["last message from the source", str(state.last_msg_at or "none")],
            ["tables still in their initial copy", str(state.tables_syncing)],
            ["errors (apply / initial copy)", f"{state.apply_errors} / {state.sync_errors}"],
            ["slot on the source", f"{state.slot} ({'active' if state.slot_active else 'inactive'})"
             if state.slot_active is not None else str(state.slot or "unknown")],
            ["lag", "unknown" if state.lag_bytes is None else f"{state.lag_bytes:,} bytes, "
             + ("unknown" if state.lag_seconds is None else f"{state.lag_seconds:.1f} s")],
        ]  # fmt: skip
        print(render_table(["feed", "state"], rows))
        for problem in (state.problem, state.source_problem):
            if problem:
                print(f"failing: {problem}")
        print("healthy" if state.healthy else "not healthy")
    return 0 if state.healthy else EXIT_UNHEALTHY


PROJECT_DIR = SQL_DIR.parent


def cmd_server(args: argparse.Namespace) -> int:
    from driver.embedded import local_server, start_local_server

    if args.action == "start":
        server, started = start_local_server(PROJECT_DIR)
        print(f"{'started' if started else 'already running'}: {server.dsn()} (data in {server.datadir}; the "
              f"password is in {server.passfile})")  # fmt: skip
        print(f"connect: psql '{server.dsn()}'")
    elif args.action == "stop":
        server = local_server(PROJECT_DIR)
        print("stopped" if server.stop() else "not running")
    else:
        server = local_server(PROJECT_DIR)
        print(f"running: {server.dsn()}" if server.running() else "not running")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from driver.demo import run_demo

    return run_demo(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from driver.bench import run_bench

    if args.small >= args.large:
        raise DriverError("--small must be smaller than --large.", 2)
    if args.rounds < 1:
        raise DriverError("--rounds must be at least 1.", 2)
    if args.cdc:
        from driver.bench_cdc import run_cdc_bench

        if args.freshness_seconds < 1 or args.cdc_rate <= 0:
            raise DriverError("--cdc needs --freshness-seconds of 1 or more and a --cdc-rate above 0.", 2)
        print(run_cdc_bench(args.freshness_seconds, args.cdc_rate, args.cdc_warmup, args.seed).table())
        return 0
    if args.citus:
        from driver.bench_citus import run_citus_bench

        print(run_citus_bench(args.small, args.large, args.delta_orders, seed=args.seed, rounds=args.rounds).table())
        return 0
    if args.freshness_rate < 1:
        raise DriverError("--freshness-rate must be at least 1 order a second.", 2)
    if args.sustained_from < 1:
        raise DriverError("--sustained-from must be at least 1 order a second.", 2)
    from driver.bench_dbt import find_dbt

    dbt = None if args.no_dbt else find_dbt(args.dbt, PROJECT_DIR)
    figures = run_bench(args.small, args.large, args.delta_orders, seed=args.seed, rounds=args.rounds,
                        freshness_seconds=args.freshness_seconds, freshness_rate=args.freshness_rate,
                        sustained_seconds=args.sustained_seconds, sustained_from=args.sustained_from,
                        dbt=dbt)  # fmt: skip
    print(figures.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="globalcart",
        description="GlobalCart 360: a PostgreSQL-native incremental refresh of an e-commerce warehouse.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser(
        "migrate",
        help="install or update the schema, functions, triggers and pg_cron",
        description="Apply db/migrations once each, re-apply db/functions and db/triggers, create pg_cron. "
        "Safe to run again. Exit 3: schema installed but pg_cron unavailable (the message says what to change).",
    )
    _add_dsn(p)
    p.add_argument("--no-cron", action="store_true", help="do not set up pg_cron (schema only)")
    p.set_defaults(func=cmd_migrate)

    p = commands.add_parser(
        "distribute",
        help="on a Citus coordinator with workers: shard the facts, copy the dimensions to every node",
        description="Turn an installed warehouse into the Citus layout: dimensions as reference tables, the "
        "order-grain facts and their audit tables distributed by order_id and colocated, the funnel and its audit "
        "by session_id, the refresh's work tables beside them; staging, bookkeeping, KPI summaries and the "
        "dimensions' audit stay on the coordinator. Idempotent; one transaction. Needs Citus with at least one "
        'worker (docs/citus.md).',
    )
    _add_dsn(p)
    p.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help=f"shards of each distributed table (default: {citus.SHARDS_PER_WORKER} per worker)",
    )
    p.set_defaults(func=cmd_distribute)

    p = commands.add_parser(
        "refresh",
        help="run globalcart.run_incremental_refresh() once and print its summary",
        description="Apply everything staged, in one transaction, and print the per-source counts.",
    )
    _add_dsn(p)
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
    _add_dsn(p)
    p.add_argument("--json", action="store_true", help="print the rows of the view as JSON")
    p.set_defaults(func=cmd_health)

    p = commands.add_parser("seed", help="load a simulated base history through staging and the refresh",
                            description="Generate customers, products and ORDERS orders over the past DAYS days, with "
                            "items, payments, shipments, returns and funnel sessions; COPY them to staging in chunks "
                            "and refresh as they land. Deterministic for a given --seed and --as-of.")  # fmt: skip
    _add_dsn(p)
    p.add_argument("--orders", type=_count, default=100_000, help="orders to generate (default: 100000)")
    p.add_argument("--days", type=_count, default=90, help="history length in days (default: 90)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument("--as-of", type=_timestamp, metavar="TS", help="the history ends here (default: now)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_seed)

    p = commands.add_parser("simulate", help="stage the deltas of a time window (no refresh)",
                            description="Stage what changed between --since and --until: new orders with items, "
                            "payments, shipments and funnel events; orders moving PAID->SHIPPED->DELIVERED->COMPLETED; "
                            "late returns; shipments turning late; plus duplicates, older versions and bad "
                            "rows.")  # fmt: skip
    _add_dsn(p)
    p.add_argument("--since", type=_timestamp, metavar="TS", help="window start (default: the orders watermark)")
    p.add_argument("--until", type=_timestamp, metavar="TS", help="window end (default: now)")
    p.add_argument("--orders", type=_count, help="new orders (default: the recent order rate over the window)")
    p.add_argument("--duplicates", type=_share, default=0.05, help="share of rows sent twice (default: 0.05)")
    p.add_argument(
        "--out-of-order",
        type=_share,
        default=0.05,
        help="share of changed orders whose older version arrives after the new one (default: 0.05)",
    )
    p.add_argument("--bad-rows", type=_count, default=0, help="invalid rows to add, for the quarantine (default: 0)")
    p.add_argument("--seed", type=int, default=361, help="random seed (default: 361)")
    p.set_defaults(func=cmd_simulate)

    p = commands.add_parser("snapshot", help="store the current KPIs under a label (globalcart.snapshot_kpis)")
    _add_dsn(p)
    p.add_argument("label", help="e.g. before, after")
    p.set_defaults(func=cmd_snapshot)

    p = commands.add_parser(
        "kpis",
        help="the KPIs of a slice: a time range, a country, a channel (globalcart.kpi_values)",
        description="Print the fourteen KPIs over the orders with order_ts in [--from, --to) of a country and "
        "channel (and the sessions whose first event is in the range, in that channel), read from the summaries the "
        "refresh keeps. Without options: the whole warehouse. Funnel KPIs are n/a when --country is given.",
    )
    _add_dsn(p)
    p.add_argument("--from", dest="from_ts", type=_timestamp, metavar="TS", help="start, included (default: none)")
    p.add_argument("--to", dest="to_ts", type=_timestamp, metavar="TS", help="end, excluded (default: none)")
    p.add_argument("--country", type=_country, help="two-letter country code, e.g. DE (default: all)")
    p.add_argument("--channel", help="e.g. web, app (default: all)")
    p.set_defaults(func=cmd_kpis)

    history.add_commands(commands, _add_dsn, _timestamp)

    p = commands.add_parser("compare", help="the latest snapshots of two labels side by side")
    _add_dsn(p)
    p.add_argument("before", nargs="?", default="before", help="label (default: before)")
    p.add_argument("after", nargs="?", default="after", help="label (default: after)")
    p.set_defaults(func=cmd_compare)

    p = commands.add_parser("schedule", help="run the refresh with pg_cron",
                            description="Register the pg_cron job globalcart-incremental-refresh (the refresh, bounded "
                            "by etl_settings max_run_time; or with --follow the follow loop), a daily "
                            "globalcart.purge_history() and a daily purge of cron.job_run_details. Where pg_cron lives "
                            "in another database (cron.database_name), the jobs are registered there with "
                            "cron.schedule_in_database.")  # fmt: skip
    _add_dsn(p)
    p.add_argument("--every", default="* * * * *", metavar="CRON", help="cron schedule (default: every minute)")
    p.add_argument(
        "--follow",
        action="store_true",
        help="follow mode: every minute the job runs CALL globalcart.refresh_for(), which refreshes again and "
        "again for 55 seconds, so rows are applied within seconds",
    )
    p.add_argument("--run-as", default="globalcart_cron", metavar="ROLE",
                   help="the login role pg_cron runs the jobs as: a member of globalcart_refresher, not a superuser "
                        "(default: globalcart_cron, created by migrate)")  # fmt: skip
    p.set_defaults(func=cmd_schedule)

    for name, verb in (("grant", "give"), ("revoke", "take away")):
        p = commands.add_parser(
            name,
            help=f"{verb} a user's globalcart roles (loader, refresher, reader, auditor)",
            description=f"{verb.capitalize()} USER the group roles of docs/contract.md §6: GRANT/REVOKE "
            "globalcart_<role> TO/FROM USER. Needs a role that may grant them (a superuser).",
        )
        _add_dsn(p)
        p.add_argument("user", help="the login role (a person or a service)")
        p.add_argument("--role", action="append", required=True, choices=("loader", "refresher", "reader", "auditor"),
                       help="a group role; repeat for several")  # fmt: skip
        if name == "grant":
            p.add_argument("--password-env", metavar="VAR",
                           help="create USER as a login role when missing, with the password in $VAR "
                                "(sent hashed: SCRAM-SHA-256)")  # fmt: skip
        p.set_defaults(func=cmd_access)

    p = commands.add_parser("unschedule", help="stop running the refresh with pg_cron")
    _add_dsn(p)
    p.set_defaults(func=cmd_unschedule)

    p = commands.add_parser("demo", help="the before/after demo, end to end",
                            description="migrate, seed if empty, snapshot 'before', simulate a delta, refresh, "
                            "snapshot 'after', print the comparison. Without --dsn or DATABASE_URL it starts its own "
                            "PostgreSQL (pg_cron preloaded) with its data under the project.")  # fmt: skip
    _add_dsn(p)
    p.add_argument("--orders", type=_count, default=20_000, help="orders to seed when empty (default: 20000)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument("--cdc", action="store_true",
                   help="fed by an OLTP database instead: a shop database beside the warehouse, its workload, "
                   "logical replication into the warehouse (cdc attach), deletes included; needs wal_level = "
                   "logical (the project's own server has it)")  # fmt: skip
    p.set_defaults(func=cmd_demo)

    p = commands.add_parser(
        "source",
        help="the OLTP source database: create its schema, or run an application workload on it",
        description="The e-commerce application's own database, which feeds the warehouse through logical "
        'replication (docs/cdc.md). init: create the shop schema (customers, '
        "products, orders, order_items, payments, shipments, returns; updated_at kept by triggers) and the "
        "publication globalcart_cdc; idempotent; exit 3 when the server needs wal_level = logical. simulate: run the "
        "application with Faker: orders placed, paid (some fail), shipped, delivered, completed, returned late, "
        "cancelled, and abandoned ones deleted — each action its own transaction.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, text in (("init", "create the shop schema and its publication"),
                         ("simulate", "run the application workload against the source")):  # fmt: skip
        a = actions.add_parser(action, help=text, description=text)
        a.add_argument("--dsn", metavar="URL",
                       help="the source database, e.g. postgresql://user@host:5432/shop "
                       "(default: $SOURCE_DATABASE_URL)")  # fmt: skip
        if action == "init":
            a.add_argument("--id-start", type=_count, metavar="N",
                           help="the shop's keys start at N (e.g. 1000000000), apart from other producers' of the "
                           "same warehouse (the simulator's start at 1; default: 1)")  # fmt: skip
        if action == "simulate":
            a.add_argument("--rate", type=float, default=5.0, metavar="ORDERS_PER_S",
                           help="orders placed a second, each with the moves of orders under way "
                           "(default: 5)")  # fmt: skip
            a.add_argument("--for", dest="duration", type=_duration, default=_duration("60s"), metavar="DURATION",
                           help="how long: 90s, 5m, 1h (default: 60s)")  # fmt: skip
            a.add_argument("--seed", type=int, help="random seed (default: a new one each time)")
            a.add_argument("--bad-rows", type=_share, default=0.0,
                           help="share of orders with a currency the warehouse does not know (default: 0)")  # fmt: skip
        a.set_defaults(func=cmd_source)

    p = commands.add_parser(
        "cdc",
        help="feed the warehouse from the OLTP source through logical replication (attach, status, detach)",
        description="attach: mirror the source's published tables in bronze tables (named as the source names them: "
        "logical replication matches tables by schema and name) and subscribe to them; a trigger on each bronze table "
        "stages every change (a delete as a tombstone) in the same transaction, exactly once. status: the "
        "subscription, its apply worker, errors, the slot on the source and the lag (exit 4 when not healthy). "
        "detach: drop the subscription, its slot on the source and the bronze tables. attach and detach need a "
        "superuser of the warehouse's server (CREATE SUBSCRIPTION does).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, text in (("attach", "subscribe the warehouse to the source's publication"),
                         ("status", "the feed's state and lag (exit 4 when not healthy)"),
                         ("detach", "drop the subscription, its slot on the source, the bronze tables")):  # fmt: skip
        a = actions.add_parser(action, help=text, description=text)
        _add_dsn(a)
        if action == "attach":
            a.add_argument("--source-dsn", metavar="URL",
                           help="the source database as the warehouse's server reaches it, e.g. "
                           "postgresql://replicator@oltp:5432/shop (default: $SOURCE_DATABASE_URL)")  # fmt: skip
        if action == "status":
            a.add_argument("--json", action="store_true", help="print the state as JSON")
        a.set_defaults(func=cmd_cdc)

    p = commands.add_parser("server", help="the local PostgreSQL that demo starts (start, stop, status)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_server)

    p = commands.add_parser("bench", help="measure the refresh (prints figures; takes minutes)",
                            description="Seed a small and a large warehouse on a throwaway server and time the same "
                            "delta into each, against a bare guarded upsert and a full reload.")  # fmt: skip
    p.add_argument("--small", type=_count, default=100_000, help="orders of the small warehouse (default: 100000)")
    p.add_argument("--large", type=_count, default=1_000_000, help="orders of the large warehouse (default: 1000000)")
    p.add_argument("--delta-orders", type=_count, default=3_000, help="new orders per delta (default: 3000)")
    p.add_argument("--rounds", type=_count, default=3, help="deltas refreshed into each warehouse (default: 3)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument(
        "--freshness-seconds",
        type=_count,
        default=60,
        metavar="S",
        help="how long producers commit orders for the freshness figures; 0 skips them (default: 60)",
    )
    p.add_argument(
        "--freshness-rate",
        type=_count,
        default=200,
        metavar="N",
        help="orders a second the producers commit, with items and payments (default: 200)",
    )
    p.add_argument("--sustained-seconds", type=_count, default=60, metavar="S",
                   help="seconds at each rate of the sustained-rate search (the producer's rate doubled while follow "
                   "mode keeps p95 staged -> visible within 5 s, then the gap to the first rate that failed halved "
                   "twice); 0 skips it (default: 60)")  # fmt: skip
    p.add_argument("--sustained-from", type=_count, default=1000, metavar="N",
                   help="the sustained-rate search's first rate, orders a second (default: 1000)")  # fmt: skip
    p.add_argument("--dbt", metavar="PATH",
                   help="the dbt executable (dbt-core and dbt-postgres 1.11) for the comparison with dbt on one delta "
                   "of orders (default: .venv-dbt/bin/dbt, which .ci/setup.sh makes, else dbt on PATH; without "
                   "either the comparison is skipped, and said so)")  # fmt: skip
    p.add_argument("--no-dbt", action="store_true", help="skip the comparison with dbt")
    p.add_argument("--citus", action="store_true",
                   help="instead: the same deltas on one server and on a Citus coordinator with two workers started "
                   "here (Citus must be installed; see docs/citus.md)")  # fmt: skip
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DriverError as err:
        print(f"globalcart: {err}", file=sys.stderr)
        return err.exit_code
    except EmbeddedServerError as err:
        print(f"globalcart: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        if connection_lost(exc):
            print(f"globalcart: lost the database connection: {first_line(exc)}", file=sys.stderr)
        else:
            print(f"globalcart: {describe_sql_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("globalcart: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        sys.stderr.close()
        return 141
