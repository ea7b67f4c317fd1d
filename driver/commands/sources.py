"""Feeds and scale-out: the OLTP source (source), the CDC feed (cdc), Citus (distribute)."""

from __future__ import annotations

import argparse
import json
import os

from driver.commands.args import EXIT_UNHEALTHY, add_dsn, count, duration, share
from driver.core import db
from driver.core.errors import DriverError
from driver.core.output import render_table
from driver.scale import citus


def _source_dsn(dsn: str | None) -> str:
    resolved = dsn or os.environ.get("SOURCE_DATABASE_URL")
    if not resolved:
        raise DriverError("no source database given: pass --dsn postgresql://user@host:port/shop (source commands) or "
                          "--source-dsn (cdc attach), or set SOURCE_DATABASE_URL.", 2)  # fmt: skip
    return resolved


def cmd_source(args: argparse.Namespace) -> int:
    """``globalcart source init|simulate``: the OLTP shop's schema, or its application workload."""
    from driver.simulation import shop as oltp

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
    """``globalcart cdc attach|status|detach``: the CDC feed (exit 4 from status when not healthy)."""
    from driver.feeds import cdc

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


def cmd_distribute(args: argparse.Namespace) -> int:
    """``globalcart distribute``: the distributed layout on a Citus coordinator with workers."""
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


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
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
            a.add_argument("--id-start", type=count, metavar="N",
                           help="the shop's keys start at N (e.g. 1000000000), apart from other producers' of the "
                           "same warehouse (the simulator's start at 1; default: 1)")  # fmt: skip
        if action == "simulate":
            a.add_argument("--rate", type=float, default=5.0, metavar="ORDERS_PER_S",
                           help="orders placed a second, each with the moves of orders under way "
                           "(default: 5)")  # fmt: skip
            a.add_argument("--for", dest="duration", type=duration, default=duration("60s"), metavar="DURATION",
                           help="how long: 90s, 5m, 1h (default: 60s)")  # fmt: skip
            a.add_argument("--seed", type=int, help="random seed (default: a new one each time)")
            a.add_argument("--bad-rows", type=share, default=0.0,
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
        add_dsn(a)
        if action == "attach":
            a.add_argument("--source-dsn", metavar="URL",
                           help="the source database as the warehouse's server reaches it, e.g. "
                           "postgresql://replicator@oltp:5432/shop (default: $SOURCE_DATABASE_URL)")  # fmt: skip
        if action == "status":
            a.add_argument("--json", action="store_true", help="print the state as JSON")
        a.set_defaults(func=cmd_cdc)

    p = commands.add_parser(
        "distribute",
        help="on a Citus coordinator with workers: shard the facts, copy the dimensions to every node",
        description="Turn an installed warehouse into the Citus layout: dimensions as reference tables, the "
        "order-grain facts and their audit tables distributed by order_id and colocated, the funnel and its audit "
        "by session_id, the refresh's work tables beside them; staging, bookkeeping, KPI summaries and the "
        "dimensions' audit stay on the coordinator. Idempotent; one transaction. Needs Citus with at least one "
        'worker (docs/citus.md).',
    )
    add_dsn(p)
    p.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help=f"shards of each distributed table (default: {citus.SHARDS_PER_WORKER} per worker)",
    )
    p.set_defaults(func=cmd_distribute)
