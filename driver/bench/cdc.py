"""``globalcart bench --cdc``: freshness through the CDC feed — source commit to fact visible.

One server started here (PostgreSQL's defaults, durable, wal_level = logical), two databases: the
shop (``globalcart source init``) and a warehouse attached to it (``globalcart cdc attach``). The
follow loop (``CALL globalcart.refresh_for()``) runs the whole time. First the shop runs for a
warm-up (``--cdc-warmup`` seconds: customers, products, orders under way), then the measured run:
the application workload (driver.simulation.shop) at ``rate`` orders a second for ``seconds``, each order
with its payment, shipment, delivery and completion as transactions of their own. For every
commit that changes an order, the time the commit returned is noted with the order's new
updated_at; a watcher polls fact_orders every 50 ms and notes when the fact holds that version (or
a later one). Latency = seen - committed: replication, the staging trigger, the wait for the
follow loop's next call and the refresh itself.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from driver.bench.freshness import percentile
from driver.core.migrate import migrate
from driver.core.output import render_table
from driver.feeds import cdc
from driver.servers.embedded import start_server
from driver.simulation import shop as oltp

POLL = 0.05
LOGICAL = "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"


@dataclass
class CdcFigures:
    """Freshness through the CDC feed: source commit -> fact visible, p50 / p95 / max."""
    rate: float
    seconds: float
    transactions: int
    versions: int
    p50: float
    p95: float
    max: float
    unseen: int

    def table(self) -> str:
        """The figures as the table `bench --cdc` prints."""
        return (
            f"freshness through the CDC feed: the shop's workload at {self.rate:g} orders/s for {self.seconds:.0f} s "
            f"({self.transactions:,} source transactions, {self.versions:,} order versions timed); the follow loop "
            "refreshing; source commit -> fact visible\n"
            + render_table(
                ["measure", "value"],
                [
                    ["p50", f"{self.p50:.2f} s"],
                    ["p95 (goal <= 3 s)", f"{self.p95:.2f} s"],
                    ["max", f"{self.max:.2f} s"],
                    ["versions not visible 30 s after the workload", f"{self.unseen:,}"],
                ],
            )
        )


def _watch(dsn: str, pending: dict[int, list[tuple[datetime, float]]], lock: threading.Lock,
           latencies: list[float], stop: threading.Event) -> None:  # fmt: skip
    with psycopg.connect(dsn, autocommit=True, application_name="globalcart-bench-watcher") as conn:
        while not stop.is_set():
            with lock:
                ids = list(pending)
            if ids:
                rows = conn.execute(
                    "SELECT order_id, updated_at FROM globalcart.fact_orders WHERE order_id = ANY(%s)", (ids,)
                ).fetchall()
                now = time.monotonic()
                with lock:
                    for order_id, stored in rows:
                        versions = pending.get(order_id, [])
                        keep = [(v, at) for v, at in versions if v > stored]
                        latencies.extend(now - at for v, at in versions if v <= stored)
                        if keep:
                            pending[order_id] = keep
                        else:
                            pending.pop(order_id, None)
            time.sleep(POLL)


def run_cdc_bench(
    seconds: float, rate: float, warmup: float, seed: int, log: Callable[[str], None] = print
) -> CdcFigures:
    """A shop database and a warehouse attached to it on a throwaway server, the follow loop
    refreshing, the shop's workload timed: source commit -> fact visible."""
    server = start_server(cron_database="postgres", extra_options=LOGICAL)
    try:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE bench_shop")
            admin.execute("CREATE DATABASE bench_warehouse")
        source, warehouse = server.dsn("bench_shop"), server.dsn("bench_warehouse")
        with psycopg.connect(warehouse) as conn:
            migrate(conn, with_cron=False)
        with psycopg.connect(source) as conn:
            oltp.init_source(conn)
        with psycopg.connect(warehouse, autocommit=True) as conn:
            cdc.attach(conn, source)
        follow = threading.Thread(target=_follow, args=(warehouse, warmup + seconds + 40), daemon=True)
        follow.start()
        with psycopg.connect(source) as conn:
            log(f"cdc bench: warm-up, {warmup:.0f} s of the shop's workload")
            oltp.run_workload(conn, rate=rate, seconds=warmup, seed=seed)
            pending: dict[int, list[tuple[datetime, float]]] = {}
            latencies: list[float] = []
            lock = threading.Lock()
            stop = threading.Event()
            timed = 0

            def committed(order_id: int, updated_at: datetime) -> None:
                nonlocal timed
                timed += 1
                with lock:
                    pending.setdefault(order_id, []).append((updated_at, time.monotonic()))

            watcher = threading.Thread(target=_watch, args=(warehouse, pending, lock, latencies, stop), daemon=True)
            watcher.start()
            log(f"cdc bench: {rate:g} orders/s for {seconds:.0f} s, timed")
            report = oltp.run_workload(conn, rate=rate, seconds=seconds, seed=seed + 1, on_order_commit=committed)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        watcher.join()
        with lock:
            unseen = sum(len(v) for v in pending.values())
            if unseen:
                with psycopg.connect(warehouse) as conn:
                    for order_id, versions in list(pending.items())[:5]:
                        stored = conn.execute("SELECT updated_at, order_status, deleted_at FROM globalcart.fact_orders "
                                              "WHERE order_id = %s", (order_id,)).fetchone()  # fmt: skip
                        log(f"cdc bench: order {order_id}, version of {versions[0][0]} not seen; stored: {stored}")
        with psycopg.connect(warehouse, autocommit=True) as conn:
            cdc.detach(conn)
        if not latencies:
            raise RuntimeError("cdc bench: no order version became visible in the facts")
        return CdcFigures(rate, report.seconds, report.transactions, timed, statistics.median(latencies),
                          percentile(latencies, 0.95), max(latencies), unseen)  # fmt: skip
    finally:
        server.stop()


def _follow(dsn: str, seconds: float) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True, application_name="globalcart-bench-follow") as conn:
            conn.execute("CALL globalcart.refresh_for(%s, '1 second')", (timedelta(seconds=seconds),))
    except psycopg.Error:
        pass  # (the server is stopped at the end of the bench, the loop with it)
