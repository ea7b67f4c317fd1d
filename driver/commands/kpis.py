"""The KPI commands: snapshot, kpis, compare."""

from __future__ import annotations

import argparse

import psycopg

from driver.commands.args import add_dsn, country, timestamp
from driver.core import db, output
from driver.core.output import fmt_number, render_table


def _print_kpis(conn: psycopg.Connection, snapshot_id: int) -> None:
    rows = conn.execute(
        "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s ORDER BY kpi_order, kpi_name",
        (snapshot_id,),
    ).fetchall()
    print(render_table(["kpi", "value"], [[name, fmt_number(value)] for name, value in rows]))


def cmd_snapshot(args: argparse.Namespace) -> int:
    """``globalcart snapshot LABEL``: snapshot_kpis(LABEL) and the values it stored."""
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
    """``globalcart kpis``: the fourteen KPIs of a slice (globalcart.kpi_values)."""
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
    """``globalcart compare``: the latest snapshots of two labels side by side."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn)
        rows = conn.execute("SELECT * FROM globalcart.compare_kpis(%s, %s)", (args.before, args.after)).fetchall()
    print(output.format_comparison(rows, args.before, args.after))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
    p = commands.add_parser("snapshot", help="store the current KPIs under a label (globalcart.snapshot_kpis)")
    add_dsn(p)
    p.add_argument("label", help="e.g. before, after")
    p.set_defaults(func=cmd_snapshot)

    p = commands.add_parser(
        "kpis",
        help="the KPIs of a slice: a time range, a country, a channel (globalcart.kpi_values)",
        description="Print the fourteen KPIs over the orders with order_ts in [--from, --to) of a country and "
        "channel (and the sessions whose first event is in the range, in that channel), read from the summaries the "
        "refresh keeps. Without options: the whole warehouse. Funnel KPIs are n/a when --country is given.",
    )
    add_dsn(p)
    p.add_argument("--from", dest="from_ts", type=timestamp, metavar="TS", help="start, included (default: none)")
    p.add_argument("--to", dest="to_ts", type=timestamp, metavar="TS", help="end, excluded (default: none)")
    p.add_argument("--country", type=country, help="two-letter country code, e.g. DE (default: all)")
    p.add_argument("--channel", help="e.g. web, app (default: all)")
    p.set_defaults(func=cmd_kpis)

    p = commands.add_parser("compare", help="the latest snapshots of two labels side by side")
    add_dsn(p)
    p.add_argument("before", nargs="?", default="before", help="label (default: before)")
    p.add_argument("after", nargs="?", default="after", help="label (default: after)")
    p.set_defaults(func=cmd_compare)
