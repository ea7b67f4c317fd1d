"""``demo``: GlobalCart 360 end to end, the seed document's before/after walk-through.

migrate -> seed (when the warehouse is empty) -> snapshot 'before' -> simulate a delta ->
refresh -> snapshot 'after' -> the before/after table. Without --dsn or DATABASE_URL it
starts the project's own PostgreSQL (pg_cron preloaded, data under the project, a free port)
and leaves it running so that psql can look around afterwards.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta

from driver import db, output
from driver.deltas import stage_window
from driver.embedded import start_local_server
from driver.errors import DriverError
from driver.migrate import SQL_DIR, migrate
from driver.progress import ProgressBar
from driver.seed import seed_history


def run_demo(args: argparse.Namespace) -> int:
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if dsn is None:
        server, started = start_local_server(SQL_DIR.parent)
        dsn = server.dsn()
        print(f"== PostgreSQL {'started' if started else 'running'} with pg_cron: {dsn}")
        print(f"   data in {server.datadir}; the password of postgres is in {server.passfile} (yours alone)")
        print(f"   connect with: psql '{dsn}'")
        print("   stop it with: python -m driver server stop")

    with db.connect(dsn) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
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
        print(output.format_delta(delta))

        print("== SELECT globalcart.run_incremental_refresh()")
        print(output.format_summary(db.run_refresh(conn), [s.name for s in db.sources(conn)]))

        print("== SELECT globalcart.snapshot_kpis('after')")
        conn.execute("SELECT globalcart.snapshot_kpis('after')")
        conn.commit()

        print("== KPIs before and after (globalcart.compare_kpis; psql: \\i db/reports/before_after_kpis.sql)")
        rows = conn.execute("SELECT * FROM globalcart.compare_kpis('before', 'after')").fetchall()
        print(output.format_comparison(rows, "before", "after"))
    return 0
