"""The KPI commands: snapshot, kpis, compare, explain."""

from __future__ import annotations

import argparse
import json

import psycopg

from driver.commands.args import add_dsn, country, positive, timestamp
from driver.core import db, output
from driver.core.errors import DriverError
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


EXPLAIN_COLUMNS = ["kpi", "before", "after", "change", "cause", "contribution", "kpi_order"]


def explanation(conn: psycopg.Connection, args: argparse.Namespace) -> tuple[str, list[tuple], list[str]]:
    """What ``explain`` shows: a title, the rows of globalcart.explain_kpis, and notes (a snapshot
    from before the attribution was recorded, whose whole change is outside_refresh)."""
    notes = []
    if args.run is not None:
        rows = conn.execute("SELECT * FROM globalcart.explain_kpis(%s::bigint)", (args.run,)).fetchall()
        return f"why the KPIs moved in run {args.run} (globalcart.explain_kpis({args.run}))", rows, notes
    rows = conn.execute("SELECT * FROM globalcart.explain_kpis(%s, %s)", (args.from_label, args.to_label)).fetchall()
    for label in dict.fromkeys((args.from_label, args.to_label)):
        recorded = conn.execute(
            """SELECT EXISTS (SELECT 1 FROM globalcart.kpi_snapshot_sums s
                               WHERE s.snapshot_id = (SELECT max(k.snapshot_id) FROM globalcart.kpi_snapshots k
                                                       WHERE k.label = %s))""",
            (label,),
        ).fetchone()[0]
        if not recorded:
            notes.append(f"snapshot {label!r} was taken before the attribution was recorded (migration 0012): "
                         "the whole change is outside_refresh")  # fmt: skip
    title = f"why the KPIs moved from snapshot {args.from_label!r} to {args.to_label!r} " \
            f"(globalcart.explain_kpis({args.from_label!r}, {args.to_label!r}))"  # fmt: skip
    return title, rows, notes


def cmd_explain(args: argparse.Namespace) -> int:
    """``globalcart explain``: each KPI's change and its largest causes (globalcart.explain_kpis)."""
    if args.run is not None and (args.from_label or args.to_label):
        raise DriverError("explain: --run explains one run, --from/--to two snapshots: give one or the other",
                          exit_code=2)  # fmt: skip
    args.from_label = args.from_label or "before"
    args.to_label = args.to_label or "after"
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn, "globalcart.kpi_attribution")
        title, rows, notes = explanation(conn, args)
    if args.json:
        print(json.dumps([{c: (str(v) if v is not None and c not in ("kpi", "cause", "kpi_order") else v)
                           for c, v in zip(EXPLAIN_COLUMNS, row, strict=True)} for row in rows], indent=1))  # fmt: skip
        return 0
    print(title)
    for note in notes:
        print(f"note: {note}")
    print(output.format_explanation(rows, args.top))
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

    p = commands.add_parser(
        "explain",
        help="why the KPIs moved: each change split into its causes (globalcart.explain_kpis)",
        description="Print, for each KPI that moved between two snapshots (the latest of each label) or in one run, "
        "its change and its largest causes: new_orders, order_updates, deletes, items, payments, shipments, returns, "
        "funnel, reverts, and outside_refresh for what no run explains (currency rates, changes outside the refresh, "
        "a rebuild). The contributions of a KPI add up to its change exactly (docs/attribution.md).",
    )
    add_dsn(p)
    p.add_argument("--from", dest="from_label", metavar="LABEL", help="snapshot label, from (default: before)")
    p.add_argument("--to", dest="to_label", metavar="LABEL", help="snapshot label, to (default: after)")
    p.add_argument("--run", type=positive, metavar="N", help="explain one run (an etl_runs run_id) instead")
    p.add_argument("--top", type=positive, default=3, metavar="K", help="causes shown per KPI (default: 3)")
    p.add_argument("--json", action="store_true", help="every row of explain_kpis as JSON (numbers as exact strings)")
    p.set_defaults(func=cmd_explain)
