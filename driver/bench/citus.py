"""``bench --citus``: the refresh on Citus beside the refresh on one server, measured in one run.

Two throwaway set-ups on this machine, started side by side with PostgreSQL's default settings
(fsync on): one server, and a Citus coordinator with two workers (docs/citus.md;
the warehouse distributed by ``globalcart distribute`` with its default shards). On each, a small
and a large warehouse are seeded the same way (same seed, same history), a first delta is refreshed
untimed, then the same ``rounds`` deltas (same seeds, so the same rows) are refreshed into each and
timed. Printed: the refresh times, Citus ÷ one server for the same deltas (goal: at most 3), and
Citus's large ÷ small per delta row (goal: at most 1.5 — the cost follows the delta, not the
warehouse, on the shards too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from driver.bench.refresh import refresh_delta
from driver.core import cluster
from driver.core.migrate import migrate
from driver.core.output import render_table
from driver.core.progress import ProgressBar
from driver.scale import citus
from driver.servers.embedded import EmbeddedServer, start_server
from driver.simulation.seed import seed_history


@dataclass
class CitusFigures:
    """The same deltas refreshed on one server and on a Citus coordinator with two workers."""
    small_orders: int
    large_orders: int
    rows: dict[str, int]  # staged rows of the timed deltas, per warehouse
    seed: dict[str, float]  # "<layout> <size>": seconds
    refresh: dict[str, float]  # "<layout> <size>": seconds of the timed deltas

    def table(self) -> str:
        """The figures as the table `bench --citus` prints."""
        def per_row(layout: str, size: str) -> float:
            return self.refresh[f"{layout} {size}"] / self.rows[size]

        rows = []
        for size, orders in (("small", self.small_orders), ("large", self.large_orders)):
            for layout in ("one server", "citus"):
                rows.append([f"seed {orders:,} orders, {layout}", f"{self.seed[f'{layout} {size}']:.1f} s", ""])
        for size, orders in (("small", self.small_orders), ("large", self.large_orders)):
            for layout in ("one server", "citus"):
                seconds = self.refresh[f"{layout} {size}"]
                rows.append([f"refresh, warehouse of {orders:,} orders, {layout}", f"{seconds:.2f} s",
                             f"{self.rows[size] / seconds:,.0f} rows/s"])  # fmt: skip
            rows.append([f"  Citus ÷ one server, {size} (goal ≤ 3)",
                         f"{per_row('citus', size) / per_row('one server', size):.2f}", ""])  # fmt: skip
        rows.append(["Citus, large ÷ small per delta row (goal ≤ 1.5)",
                     f"{per_row('citus', 'large') / per_row('citus', 'small'):.2f}", ""])  # fmt: skip
        rows.append(["one server, large ÷ small per delta row",
                     f"{per_row('one server', 'large') / per_row('one server', 'small'):.2f}", ""])  # fmt: skip
        return (f"Citus: a coordinator and two workers on this machine; deltas: {self.rows['small']:,} staged rows "
                f"in all (small), {self.rows['large']:,} (large)\n"
                + render_table(["measure", "time / ratio", "throughput"], rows))  # fmt: skip


def start_citus_cluster(workers: int = 2) -> tuple[EmbeddedServer, list[EmbeddedServer]]:
    """A coordinator (Citus and pg_cron preloaded) and ``workers`` workers (Citus), each a
    throwaway server of our own on 127.0.0.1 with PostgreSQL's default settings."""
    started: list[EmbeddedServer] = []
    coordinator_options = f"-c shared_preload_libraries=citus,pg_cron {cluster.NODE_OPTIONS}"
    worker_options = f"-c shared_preload_libraries=citus {cluster.NODE_OPTIONS}"
    try:
        started.append(start_server(extra_options=coordinator_options))
        for _ in range(workers):
            started.append(start_server(preload_cron=False, extra_options=worker_options))
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started[0], started[1:]


def run_citus_bench(
    small: int,
    large: int,
    delta_orders: int,
    seed: int = 360,
    rounds: int = 3,
    log: Callable[[str], None] = print,
) -> CitusFigures:
    """Seed and refresh the same deltas on one server and on a Citus cluster started here; time both."""
    single = start_server(cron_database="postgres")
    try:
        coordinator, workers = start_citus_cluster()
    except BaseException:
        single.stop()
        raise
    try:
        until = datetime.now(UTC).replace(microsecond=0)
        as_of = until - timedelta(days=1)
        step = (until - as_of) / rounds
        figures = CitusFigures(small, large, {"small": 0, "large": 0}, {}, {})
        for size, orders in (("small", small), ("large", large)):
            for layout in ("one server", "citus"):
                name = f"bench_{size}"
                if layout == "citus":
                    dsn = cluster.create_cluster_database(coordinator, workers, name)
                else:
                    with psycopg.connect(single.dsn("postgres"), autocommit=True) as admin:
                        admin.execute(f"CREATE DATABASE {name}")
                    dsn = single.dsn(name)
                key = f"{layout} {size}"
                with psycopg.connect(dsn) as conn:
                    migrate(conn, with_cron=False)
                    if layout == "citus":
                        citus.distribute(conn)
                    report = seed_history(conn, dsn, orders=orders, seed=seed, as_of=as_of,
                                          progress=ProgressBar(f"seed {size} warehouse, {layout}"))  # fmt: skip
                    figures.seed[key] = report.seconds
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                    refresh_delta(conn, as_of - step, as_of, seed + 50, delta_orders)  # (cold after the seed: untimed)
                    conn.execute("CHECKPOINT")
                rows = seconds = 0.0
                with psycopg.connect(dsn) as conn:
                    for n in range(rounds):
                        batch, took = refresh_delta(conn, as_of + step * n, as_of + step * (n + 1), seed + 1 + n,
                                                    delta_orders)  # fmt: skip
                        seconds += took
                        rows += batch.count()
                        log(f"{key} warehouse, delta {n + 1}/{rounds}: {batch.count():,} rows in {took:.2f} s")
                figures.refresh[key] = seconds
                figures.rows[size] = int(rows)  # (the same deltas on both layouts)
        return figures
    finally:
        for server in (single, coordinator, *workers):
            server.stop()
