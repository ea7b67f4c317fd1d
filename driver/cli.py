"""Command line of GlobalCart 360: ``python -m driver <command>`` (also installed as ``globalcart``).

The driver holds no refresh logic: it applies the SQL, calls the database's functions and
prints what they return. Every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys

import psycopg

from driver import db
from driver.errors import DriverError, describe_sql_error, first_line
from driver.migrate import migrate

EXIT_CRON_UNAVAILABLE = 3
COUNT_COLUMNS = ("claimed", "inserted", "updated", "stale", "duplicate", "rejected", "deferred")
SOURCES = ("customers", "products", "orders", "order_items", "payments", "shipments", "returns", "funnel_events")


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


def format_summary(summary: dict) -> str:
    """The jsonb a refresh returns, as a table a person reads."""
    if summary.get("status") == "skipped":
        return "refresh skipped: another refresh is running (it will apply what is staged)."
    header = ["source", *COUNT_COLUMNS]
    rows = [[source, *(str(summary.get(source, {}).get(c, 0)) for c in COUNT_COLUMNS)] for source in SOURCES]
    totals = summary.get("totals") or {}
    rows.append(["total", *(str(totals.get(c, 0)) for c in COUNT_COLUMNS)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells))

    out = [
        f"refresh run {summary.get('run_id')}: {summary.get('status')} in {summary.get('duration_ms')} ms",
        line(header),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows),
    ]
    returned = (summary.get("derived") or {}).get("orders_returned", 0)
    if returned:
        out.append(f"orders turned RETURNED by late returns: {returned}")
    if totals.get("rejected"):
        out.append(f"rejected rows are in globalcart.etl_rejects WHERE run_id = {summary.get('run_id')}")
    return "\n".join(out)


def cmd_refresh(args: argparse.Namespace) -> int:
    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        row = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()
    assert row is not None
    summary = row[0]
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
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
        "refresh",
        help="run globalcart.run_incremental_refresh() once and print its summary",
        description="Apply everything staged, in one transaction, and print the per-source counts.",
    )
    _add_dsn(p)
    p.add_argument("--json", action="store_true", help="print the summary as the jsonb the function returns")
    p.set_defaults(func=cmd_refresh)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DriverError as err:
        print(f"globalcart: {err}", file=sys.stderr)
        return err.exit_code
    except psycopg.OperationalError as exc:
        print(f"globalcart: lost the database connection: {first_line(exc)}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"globalcart: {describe_sql_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("globalcart: interrupted", file=sys.stderr)
        return 130
