"""``history``, ``as-of`` and ``revert``: the warehouse's history (docs/contract.md §7) on the command line.

Each calls one function of the database — ``order_timeline()``, ``kpi_values_as_of()``,
``revert_run()`` — and prints what it returns; the history itself is kept and read in SQL.
``revert`` first runs the revert in a transaction it rolls back, prints what it would change, and
commits only with ``--yes``.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from driver.commands.args import add_dsn, timestamp
from driver.core import db
from driver.core.errors import DriverError
from driver.core.output import fmt_number, render_table


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _changes(version: dict, before: dict | None, key: dict) -> str:
    """The first version of a row: its fields; a later one: what changed, old -> new."""
    if before is None:
        return ", ".join(f"{k}={_value(v)}" for k, v in version.items() if k not in key and v is not None)
    changed = [f"{k}: {_value(before.get(k))} -> {_value(v)}" for k, v in version.items() if before.get(k) != v]
    return ", ".join(changed) if changed else "(no change)"


def timeline_table(rows: list[tuple]) -> str:
    """order_timeline() rows as a table: one line per version, with what it changed."""
    previous: dict[tuple[str, str], dict] = {}
    lines = []
    for table_name, key, valid_from, valid_to, run_id, ended, version in rows:
        ident = (table_name, json.dumps(key, sort_keys=True))
        label = ", ".join(f"{k}={v}" for k, v in key.items() if not (table_name != "fact_orders" and k == "order_id"))
        until = _when(valid_to) + (" (deleted)" if ended == "deleted" else "")
        lines.append([_when(valid_from) or "(before history)", until or "now", "" if run_id is None else str(run_id),
                      table_name.removeprefix("fact_"), label,
                      _changes(version, previous.get(ident), key)])  # fmt: skip
        previous[ident] = version
        if ended == "deleted":
            previous.pop(ident)  # a later insert of the key shows all its fields again
    return render_table(["valid from (UTC)", "valid to (UTC)", "run", "table", "key", "version"], lines, "llrlll")


def cmd_history(args: argparse.Namespace) -> int:
    """``globalcart history ORDER_ID``: the order's timeline (globalcart.order_timeline)."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn, "globalcart.revert_run(bigint)")
        rows = conn.execute("SELECT * FROM globalcart.order_timeline(%s)", (args.order_id,)).fetchall()
    if not rows:
        raise DriverError(f"order {args.order_id} has no version in this warehouse (never loaded, or its history "
                          "was purged): check the id.")  # fmt: skip
    print(f"order {args.order_id}: {len(rows)} version(s) of the order and its items, payments, shipments and "
          "returns, oldest first (valid from/to: when the run that wrote/replaced it finished)")  # fmt: skip
    print(timeline_table(rows))
    return 0


def cmd_as_of(args: argparse.Namespace) -> int:
    """``globalcart as-of TS``: the KPIs as the warehouse held them at TS, beside now."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn, "globalcart.revert_run(bigint)")
        then = conn.execute(
            "SELECT kpi_name, kpi_value FROM globalcart.kpi_values_as_of(%s) ORDER BY kpi_order", (args.at,)
        ).fetchall()
        now, clock = conn.execute(
            "SELECT array_agg(ARRAY[kpi_name, kpi_value::text] ORDER BY kpi_order), clock_timestamp() "
            "FROM globalcart.kpi_values()"
        ).fetchone()
    current = {name: (None if value is None else Decimal(value)) for name, value in now}
    print(f"KPIs of the whole warehouse as it was at {_when(args.at)} UTC (the runs finished by then), and now")
    if args.at > clock:
        print(f"{_when(args.at)} is in the future: both columns are the warehouse as it is now.")
    elif not then[0][1]:
        print(f"no order had been loaded by {_when(args.at)} (before the first run, or an empty warehouse then).")
    print(render_table(["kpi", f"at {_when(args.at)}", "now"],
                       [[name, fmt_number(value), fmt_number(current.get(name))] for name, value in then]))  # fmt: skip
    return 0


def _revert_lines(summary: dict) -> list[list[str]]:
    return [[table, f"{counts['deleted']:,}", f"{counts['restored']:,}", f"{counts['reinserted']:,}"]
            for table, counts in sorted(summary.get("tables", {}).items())]  # fmt: skip


def cmd_revert(args: argparse.Namespace) -> int:
    """``globalcart revert RUN_ID``: what undoing the run would change; with --yes, undo it as a new run."""
    with db.connect(db.resolve_dsn(args.dsn)) as conn:
        db.require_schema(conn, "globalcart.revert_run(bigint)")
        run = conn.execute(
            "SELECT started_at, finished_at, status, reverts_run_id FROM globalcart.etl_runs WHERE run_id = %s",
            (args.run_id,),
        ).fetchone()
        summary = conn.execute("SELECT globalcart.revert_run(%s)", (args.run_id,)).fetchone()[0]
        what = (f"run {args.run_id}" + (f" (a revert of run {run[3]})" if run and run[3] else "")
                + (f", finished {_when(run[1])} UTC" if run else ""))  # fmt: skip
        header = ["table", "rows it inserted: deleted", "rows it changed: restored", "rows it deleted: put back"]
        if not args.yes:
            conn.rollback()
            print(f"{what}: reverting it would change {summary['rows_changed']:,} row(s):")
            print(render_table(header, _revert_lines(summary)))
            print(f"nothing changed yet: run `globalcart revert {args.run_id} --yes` to revert it (as a new run, "
                  "which can itself be reverted).")  # fmt: skip
            return 0
        conn.commit()
    print(f"reverted {what} as run {summary['run_id']}: {summary['rows_changed']:,} row(s) changed")
    print(render_table(header, _revert_lines(summary)))
    print(f"(to undo this, `globalcart revert {summary['run_id']}`)")
    return 0


def _run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id: give a whole number (globalcart.etl_runs)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a run id: run ids start at 1")
    return value


def _order_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an order id: give a whole number") from None


def register(commands: argparse._SubParsersAction) -> None:
    """Adds the history commands (history, as-of, revert) to the command line."""
    p = commands.add_parser(
        "history",
        help="every version of an order and its items, payments, shipments and returns (globalcart.order_timeline)",
        description="Print the timeline of one order: each version of the order and of its children, oldest first, "
        "with when it became and stopped being the warehouse's, the run that wrote it and what it changed. Needs "
        "globalcart_auditor (the versions hold personal data).",
    )
    add_dsn(p)
    p.add_argument("order_id", type=_order_id, metavar="ORDER_ID")
    p.set_defaults(func=cmd_history)

    p = commands.add_parser(
        "as-of",
        help="the KPIs as the warehouse held them at a time, beside now (globalcart.kpi_values_as_of)",
        description="Print the fourteen KPIs of the whole warehouse as it was at TS — the runs finished by then, "
        "what a snapshot taken then would have stored — beside their values now. Reads every fact and its audit "
        "rows once (seconds at a million orders).",
    )
    add_dsn(p)
    p.add_argument("at", type=timestamp, metavar="TS", help="ISO 8601 time (naive: UTC), e.g. 2026-11-28T09:00")
    p.set_defaults(func=cmd_as_of)

    p = commands.add_parser(
        "revert",
        help="undo one run as a new run (globalcart.revert_run); shows what it would change, asks for --yes",
        description="Undo what run RUN_ID changed in the facts and dimensions: rows it inserted are deleted, rows "
        "it updated get their previous version back, and the KPI summaries follow. Without --yes it only shows what "
        "it would change. Refused when a later run changed the same rows since (revert that one first). Run it as "
        "the warehouse's owner.",
    )
    add_dsn(p)
    p.add_argument("run_id", type=_run_id, metavar="RUN_ID")
    p.add_argument("--yes", action="store_true", help="do it (default: show what it would change, change nothing)")
    p.set_defaults(func=cmd_revert)
