"""``bench --citus``: the refresh on Citus beside the refresh on one server, measured in one run.

Two throwaway set-ups on this machine, started side by side with PostgreSQL's default settings
(fsync on): one server, and a Citus coordinator with two workers (docs/citus.md;
the warehouse distributed by ``globalcart distribute`` with its default shards). On each, a small
and a large warehouse are seeded the same way (same seed, same history), a first delta is refreshed
untimed, then the same ``rounds`` deltas of ``delta_orders`` new orders (same seeds, so the same
rows) are refreshed into each and timed; on the large warehouse also ``rounds`` deltas of one new
order and of a minute of a shop (MINUTE_ORDERS new orders with what changed in ten minutes: about
2,500 staged rows), the three delta sizes of the goal; then follow-mode freshness at
``freshness_rate`` orders a second on both large warehouses. Printed: the refresh times, Citus ÷ one
server for the same deltas at each size (goal: at most 3; one order: at most 5), Citus's large ÷
small per delta row (goal: at most 1.5 — the cost follows the delta, not the warehouse, on the
shards too), and staged -> visible p50 / p95 / max in follow mode (goal on Citus: p95 at most 2 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from driver.bench.freshness import Freshness, measure
from driver.bench.refresh import refresh_delta
from driver.core import cluster
from driver.core.migrate import migrate
from driver.core.output import render_table
from driver.core.progress import ProgressBar
from driver.scale import citus
from driver.servers.embedded import EmbeddedServer, start_server
from driver.simulation.seed import seed_history

LAYOUTS = ("one server", "citus")
MINUTE_ORDERS = 200  # new orders of "a minute of a shop" (with the changes of ten minutes: ~2,500 rows)
# the small delta sizes timed on the large warehouse: label -> (new orders, window); the third is "large",
# the --delta-orders deltas
SIZES = {"one order": (1, timedelta(minutes=1)), "a minute": (MINUTE_ORDERS, timedelta(minutes=10))}
SMALL_WINDOWS = timedelta(hours=2)  # the last two hours before the run: the small sizes' windows


@dataclass
class CitusFigures:
    """The same deltas refreshed on one server and on a Citus coordinator with two workers."""
    small_orders: int
    large_orders: int
    delta_orders: int  # new orders of each delta of "small" and "large"
    rows: dict[str, int]  # staged rows of the timed deltas: "small", "large" (--delta-orders), and each of SIZES
    seed: dict[str, float]  # "<layout> <size>": seconds
    refresh: dict[str, float]  # "<layout> <size>": seconds of the timed deltas (size: small, large, or of SIZES)
    freshness: dict[str, Freshness] = field(default_factory=dict)  # layout -> follow mode on the large warehouse
    freshness_rate: int = 0
    deltas: dict[str, int] = field(default_factory=dict)  # size -> how many deltas were timed

    def ratio(self, size: str) -> float:
        """Citus ÷ one server, for the same deltas of ``size``."""
        return self.refresh[f"citus {size}"] / self.refresh[f"one server {size}"]

    def table(self) -> str:
        """The figures as the table `bench --citus` prints."""
        def per_row(layout: str, size: str) -> float:
            return self.refresh[f"{layout} {size}"] / self.rows[size]

        rows = []
        for size, orders in (("small", self.small_orders), ("large", self.large_orders)):
            for layout in LAYOUTS:
                rows.append([f"seed {orders:,} orders, {layout}", f"{self.seed[f'{layout} {size}']:.1f} s", ""])
        for size, orders in (("small", self.small_orders), ("large", self.large_orders)):
            for layout in LAYOUTS:
                seconds = self.refresh[f"{layout} {size}"]
                rows.append([f"refresh, warehouse of {orders:,} orders, {layout}", f"{seconds:.2f} s",
                             f"{self.rows[size] / seconds:,.0f} rows/s"])  # fmt: skip
            rows.append([f"  Citus ÷ one server, {size} (goal ≤ 3)", f"{self.ratio(size):.2f}", ""])
        rows.append(["Citus, large ÷ small per delta row (goal ≤ 1.5)",
                     f"{per_row('citus', 'large') / per_row('citus', 'small'):.2f}", ""])  # fmt: skip
        rows.append(["one server, large ÷ small per delta row",
                     f"{per_row('one server', 'large') / per_row('one server', 'small'):.2f}", ""])  # fmt: skip
        for size, goal in (("one order", 5), ("a minute", 3), ("large", 3)):
            if f"citus {size}" not in self.refresh:
                continue
            label = {"one order": "one new order", "a minute": f"a minute of a shop ({MINUTE_ORDERS} new orders)",
                     "large": f"{self.delta_orders:,} new orders"}[size]  # fmt: skip
            for layout in LAYOUTS:
                seconds = self.refresh[f"{layout} {size}"]
                rows.append([f"delta of {label}, {layout}", f"{seconds * 1000 / self.rounds(size):.0f} ms a delta",
                             f"{self.rows[size] / self.rounds(size):,.0f} rows a delta"])  # fmt: skip
            rows.append([f"  Citus ÷ one server, {label} (goal ≤ {goal})", f"{self.ratio(size):.2f}", ""])
        for layout, fresh in self.freshness.items():
            goal = " (goal p95 ≤ 2 s)" if layout == "citus" else ""
            rows.append([f"follow mode at {self.freshness_rate}/s, {layout}: staged -> visible p50 / p95 / max{goal}",
                         f"{fresh.p50:.2f} / {fresh.p95:.2f} / {fresh.max:.2f} s", f"{fresh.orders:,} orders"])
        return (f"Citus: a coordinator and two workers on this machine; deltas: {self.rows['small']:,} staged rows "
                f"in all (small), {self.rows['large']:,} (large)\n"
                + render_table(["measure", "time / ratio", "throughput"], rows))  # fmt: skip

    def rounds(self, size: str) -> int:
        """How many deltas of ``size`` were timed."""
        return self.deltas.get(size, 1)


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
    freshness_seconds: int = 60,
    freshness_rate: int = 200,
    log: Callable[[str], None] = print,
) -> CitusFigures:
    """Seed and refresh the same deltas on one server and on a Citus cluster started here; time both;
    then follow-mode freshness on both large warehouses (``freshness_seconds`` 0: not measured)."""
    single = start_server(cron_database="postgres")
    try:
        coordinator, workers = start_citus_cluster()
    except BaseException:
        single.stop()
        raise
    try:
        until = datetime.now(UTC).replace(microsecond=0) - SMALL_WINDOWS
        as_of = until - timedelta(days=1)
        step = (until - as_of) / rounds
        figures = CitusFigures(small, large, delta_orders, {"small": 0, "large": 0}, {}, {},
                               freshness_rate=freshness_rate)
        figures.deltas = {"small": rounds, "large": rounds}
        large_dsns = {}
        for size, orders in (("small", small), ("large", large)):
            for layout in LAYOUTS:
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
                deltas = [(size, as_of + step * n, as_of + step * (n + 1), seed + 1 + n, delta_orders)
                          for n in range(rounds)]  # fmt: skip
                if size == "large":  # the small sizes, in the two hours after the large deltas' day
                    large_dsns[layout] = dsn
                    slot = SMALL_WINDOWS / (len(SIZES) * rounds)
                    for k, (label, (new_orders, window)) in enumerate(SIZES.items()):
                        for n in range(rounds):
                            since = until + slot * (k * rounds + n)
                            deltas.append((label, since, since + window, seed + 100 + 10 * k + n, new_orders))
                            figures.deltas[label] = rounds
                timed: dict[str, float] = {}
                rows: dict[str, int] = {}
                with psycopg.connect(dsn) as conn:
                    for label, since, upto, delta_seed, new_orders in deltas:
                        batch, took = refresh_delta(conn, since, upto, delta_seed, new_orders)
                        timed[label] = timed.get(label, 0.0) + took
                        rows[label] = rows.get(label, 0) + batch.count()
                        log(f"{key} warehouse, delta ({label}): {batch.count():,} rows in {took:.2f} s")
                for label, seconds in timed.items():
                    figures.refresh[f"{layout} {label}"] = seconds
                    figures.rows[label] = rows[label]  # (the same deltas on both layouts)
        if freshness_seconds > 0:
            for layout in LAYOUTS:
                figures.freshness[layout] = measure(large_dsns[layout], "follow", freshness_seconds, freshness_rate,
                                                    seed + 7, log=log)  # fmt: skip
        return figures
    finally:
        for server in (single, coordinator, *workers):
            server.stop()
