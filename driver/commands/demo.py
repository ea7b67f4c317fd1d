"""``demo``: GlobalCart 360 end to end, the seed document's before/after walk-through.

migrate -> seed (when the warehouse is empty) -> snapshot 'before' -> simulate a delta ->
refresh -> snapshot 'after' -> the before/after table. Without --dsn or DATABASE_URL it
starts the project's own PostgreSQL (pg_cron preloaded, wal_level = logical, data under the
project, a free port) and leaves it running so that psql can look around afterwards.

``demo --cdc``: the same walk-through fed by an OLTP database through logical replication
(docs/cdc.md): a shop database beside the warehouse on the same
server (``<warehouse>_shop``; on the project's server the warehouse is ``globalcart_cdc``, apart
from the simulator's ``globalcart``, whose keys would collide with the shop's), source init, the
shop's workload, cdc attach, refresh, snapshot 'before', more workload — deletes included —,
refresh, snapshot 'after', the comparison and the feed's status.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from driver.commands.args import add_dsn, count
from driver.core import db, output
from driver.core.errors import DriverError
from driver.core.migrate import SQL_DIR, migrate
from driver.core.progress import ProgressBar
from driver.servers.embedded import start_local_server
from driver.simulation.deltas import stage_window
from driver.simulation.seed import seed_history


def run_demo(args: argparse.Namespace) -> int:
    """``globalcart demo``: the seed document's walk-through on the given database, or on the project's own server."""
    if args.cdc:
        return run_cdc_demo(args)
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if dsn is None:
        server, started = start_local_server(SQL_DIR.parent)
        dsn = server.dsn()
        print(f"== PostgreSQL {'started' if started else 'running'} with pg_cron: {dsn}")
        print(f"   data in {server.datadir}; the password of postgres is in {server.passfile} (yours alone)")
        print(f"   connect with: psql '{dsn}'")
        print("   stop it with: python -m driver server stop")

    with db.connect(dsn) as conn:
        superuser = db.is_superuser(conn)
        conn.commit()
        if superuser:
            print("== migrate")
            report = migrate(conn)
            print(f"   {len(report.applied)} migration(s) applied, {report.routine_files} function/trigger files")
            if report.cron is not None:
                print(f"   {report.cron.message}")
        else:  # a service login (loader, refresher, reader): migrating is a superuser's job
            installed = conn.execute("SELECT to_regclass('globalcart.etl_refresh_lock') IS NOT NULL").fetchone()[0]
            conn.commit()
            if not installed:
                raise DriverError("the warehouse is not installed (or is older than this driver): a superuser runs "
                                  "`globalcart migrate` first.")  # fmt: skip
            print("== migrate: left to a superuser (this login is not one); the schema is installed")

        has_orders = conn.execute("SELECT EXISTS (SELECT 1 FROM globalcart.fact_orders)").fetchone()[0]
        conn.commit()
        if not has_orders:
            print(f"== seed: {args.orders:,} orders over 90 days, through staging and the refresh")
            as_of = datetime.now(UTC) - timedelta(days=1)
            seeded = seed_history(conn, dsn, orders=args.orders, seed=args.seed, as_of=as_of,
                                  progress=ProgressBar("   seed"))  # fmt: skip
            print(f"   {seeded.rows_staged:,} rows in {seeded.seconds:.1f} s")

        print("== SELECT globalcart.snapshot_kpis('before')")
        conn.execute("SELECT globalcart.snapshot_kpis('before')")
        conn.commit()

        print("== simulate: the deltas since the last watermark")
        total = conn.execute("SELECT count(*) FROM globalcart.fact_orders").fetchone()[0]
        conn.commit()
        watermark = conn.execute(
            "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'"
        ).fetchone()[0]
        conn.commit()
        until = datetime.now(UTC)
        since = watermark if watermark and watermark < until - timedelta(seconds=1) else until - timedelta(seconds=1)
        delta = stage_window(conn, since=since, until=until, orders=max(200, total // 20),
                             seed=args.seed + int(until.timestamp()) % 1000, bad_rows=8)  # fmt: skip
        print(delta.table())

        print("== SELECT globalcart.run_incremental_refresh()")
        print(output.format_summary(db.run_refresh(conn), [s.name for s in db.sources(conn)]))

        print("== SELECT globalcart.snapshot_kpis('after')")
        conn.execute("SELECT globalcart.snapshot_kpis('after')")
        conn.commit()

        print("== KPIs before and after (globalcart.compare_kpis; psql: \\i db/reports/before_after_kpis.sql)")
        rows = conn.execute("SELECT * FROM globalcart.compare_kpis('before', 'after')").fetchall()
        print(output.format_comparison(rows, "before", "after"))
        _print_why(conn)
    print("== Watch it live in the browser (docs/dashboard.md):")
    own = not (args.dsn or os.environ.get("DATABASE_URL"))
    print("   .venv/bin/globalcart dashboard" + ("" if own else " --dsn <this database's URL>")
          + "    # then open http://127.0.0.1:8360/")
    return 0


def _print_why(conn) -> None:
    """The end of a demo: why the KPIs moved between 'before' and 'after' (globalcart.explain_kpis)."""
    print("== Why they moved (globalcart.explain_kpis('before', 'after'); globalcart explain --top 5 for more)")
    rows = conn.execute("SELECT * FROM globalcart.explain_kpis('before', 'after')").fetchall()
    print(output.format_explanation(rows, 3))


def _caught_up(source_dsn: str, warehouse_dsn: str, timeout: float = 60) -> None:
    """Wait until each bronze table has what its source table has (rows and newest updated_at)."""
    from driver.simulation import shop as oltp

    query = " UNION ALL ".join(f"SELECT '{t}', count(*), max(updated_at) FROM shop.{t}" for t in oltp.TABLES)
    deadline = time.monotonic() + timeout
    with db.connect(source_dsn, autocommit=True) as source, db.connect(warehouse_dsn, autocommit=True) as warehouse:
        while source.execute(query).fetchall() != warehouse.execute(query).fetchall():
            if time.monotonic() > deadline:
                raise DriverError(f"the warehouse did not catch up with the shop within {timeout:.0f} s: see "
                                  "globalcart cdc status.")  # fmt: skip
            time.sleep(0.2)


def _drain(conn) -> None:
    """Refresh until staging holds nothing a call can apply now, printing each call that did work."""
    sources = [s.name for s in db.sources(conn)]
    while True:
        summary = db.run_refresh(conn)
        totals = summary.get("totals", {})
        if not totals.get("claimed") or totals["claimed"] == totals.get("deferred"):
            return
        print(output.format_summary(summary, sources))


def run_cdc_demo(args: argparse.Namespace) -> int:
    """``globalcart demo --cdc``: the walk-through fed by a shop database through logical replication."""
    from driver.feeds import cdc
    from driver.simulation import shop as oltp

    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if dsn is None:
        server, started = start_local_server(SQL_DIR.parent)
        with db.connect(server.dsn("postgres"), autocommit=True) as admin:
            if admin.execute("SHOW wal_level").fetchone()[0] != "logical":  # started by an older driver
                server.stop()
                server, started = start_local_server(SQL_DIR.parent)
        warehouse_db, source_db = "globalcart_cdc", "globalcart_cdc_shop"
        dsn, source_dsn = server.dsn(warehouse_db), server.dsn(source_db)
        subscriber_dsn = server.socket_dsn(source_db)  # (the apply worker cannot read the passfile)
        admin_dsn = server.dsn("postgres")
        print(f"== PostgreSQL {'started' if started else 'running'} with pg_cron and wal_level = logical")
        print(f"   warehouse: psql '{dsn}'")
        print(f"   shop (the OLTP source): psql '{source_dsn}'")
        print("   stop it with: python -m driver server stop")
    else:
        warehouse_db = conninfo_to_dict(dsn).get("dbname") or "postgres"
        source_db = f"{warehouse_db}_shop"
        source_dsn = subscriber_dsn = make_conninfo(dsn, dbname=source_db)
        admin_dsn = make_conninfo(dsn, dbname="postgres")
    with db.connect(admin_dsn, autocommit=True) as admin:
        if admin.execute("SHOW wal_level").fetchone()[0] != "logical":
            raise DriverError("this server has wal_level = replica: the CDC demo needs wal_level = logical (ALTER "
                              "SYSTEM SET wal_level = logical, then restart it).")  # fmt: skip
        for name in (warehouse_db, source_db):
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    print(f"== source init: the shop's tables and publication in {source_db}")
    with db.connect(source_dsn) as source:
        oltp.init_source(source)
        fresh = source.execute("SELECT NOT EXISTS (SELECT 1 FROM shop.orders)").fetchone()[0]
        source.commit()
        if fresh:
            print("== source simulate: the shop's first 15 seconds, 20 orders a second")
            print("   " + oltp.run_workload(source, rate=20, seconds=15, seed=args.seed).line())
    with db.connect(dsn, autocommit=True) as conn:
        print("== migrate the warehouse")
        migrate(conn, with_cron=False)
        if cdc.status(conn).attached:
            print("== cdc attach: attached already")
        else:
            print("== cdc attach: the warehouse subscribes to the shop (its rows are copied first)")
            report = cdc.attach(conn, subscriber_dsn)
            print(f"   mirrors {', '.join(report.tables)}; slot {report.slot} on the source")
    _caught_up(source_dsn, dsn)
    with db.connect(dsn) as conn:
        print("== SELECT globalcart.run_incremental_refresh() (until staging is drained)")
        _drain(conn)
        conn.execute("SELECT globalcart.snapshot_kpis('before')")
        conn.commit()
        print("== SELECT globalcart.snapshot_kpis('before')")
    print("== source simulate: 10 more seconds of the shop (orders move on; abandoned ones are deleted)")
    with db.connect(source_dsn) as source:
        print("   " + oltp.run_workload(source, rate=20, seconds=10, seed=args.seed + int(time.time()) % 1000).line())
    _caught_up(source_dsn, dsn)
    with db.connect(dsn) as conn:
        print("== SELECT globalcart.run_incremental_refresh()")
        _drain(conn)
        deleted = conn.execute("SELECT count(*) FROM globalcart.fact_orders WHERE deleted_at IS NOT NULL").fetchone()[0]
        print(f"   orders deleted in the shop, marked deleted_at here (the KPIs leave them out): {deleted:,}")
        conn.execute("SELECT globalcart.snapshot_kpis('after')")
        conn.commit()
        print("== KPIs before and after (globalcart.compare_kpis)")
        rows = conn.execute("SELECT * FROM globalcart.compare_kpis('before', 'after')").fetchall()
        print(output.format_comparison(rows, "before", "after"))
        _print_why(conn)
    with db.connect(dsn, autocommit=True) as conn:
        state = cdc.status(conn)
    print(f"== cdc status: {'healthy' if state.healthy else 'not healthy'}; lag "
          f"{'unknown' if state.lag_bytes is None else f'{state.lag_bytes:,} bytes'}")  # fmt: skip
    print("   keep it running: globalcart schedule --follow --dsn <warehouse>, and globalcart source simulate "
          "--dsn <shop> --for 10m")  # fmt: skip
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds the demo command to the command line."""
    p = commands.add_parser("demo", help="the before/after demo, end to end",
                            description="migrate, seed if empty, snapshot 'before', simulate a delta, refresh, "
                            "snapshot 'after', print the comparison. Without --dsn or DATABASE_URL it starts its own "
                            "PostgreSQL (pg_cron preloaded) with its data under the project.")  # fmt: skip
    add_dsn(p)
    p.add_argument("--orders", type=count, default=20_000, help="orders to seed when empty (default: 20000)")
    p.add_argument("--seed", type=int, default=360, help="random seed (default: 360)")
    p.add_argument("--cdc", action="store_true",
                   help="fed by an OLTP database instead: a shop database beside the warehouse, its workload, "
                   "logical replication into the warehouse (cdc attach), deletes included; needs wal_level = "
                   "logical (the project's own server has it)")  # fmt: skip
    p.set_defaults(func=run_demo)
