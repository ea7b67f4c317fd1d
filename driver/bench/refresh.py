"""``bench``: the refresh's speed, measured in one run on one throwaway server, shown as ratios.

1. Two warehouses seeded through staging and the refresh: a small one and a large one.
2. Deltas of the same kinds and sizes (new orders with items, payments, shipments and funnel
   events; status changes; late returns; SLA moves) refreshed into each: throughput, and
   large ÷ small per delta row, beside the same ratio of the bare upserts (goal: at most the bare
   upsert's own + 0.1 — the cost follows the delta and the physics, not the warehouse). A first
   delta right after the seed is refreshed untimed (its time is printed): it reads from disk the
   pages of the orders it touches.
3. Each warehouse's deltas also applied to a clone of it taken right after its seed, whose facts
   have their audit triggers disabled, by a bare guarded upsert (INSERT … ON CONFLICT … DO UPDATE
   … WHERE EXCLUDED.updated_at > t.updated_at; no trigger, no validation, no claim): the physical
   reference. The clone gets the same untimed first delta, then each timed delta right after its
   refresh, so both sides run equally warm; refresh ÷ bare (goal: at most 2.5, stretch 2). A third
   copy, also taken right after the seed, refreshes the same deltas with the setting
   kpi_attribution off: what recording why the KPIs moved costs (goal: at most +10 %).
4. A full reload of the large warehouse (every dimension and fact copied into fresh tables
   with the same indexes: the database's share of a reload, a lower bound). The KPIs read from
   the summaries the refresh keeps: snapshot_kpis() on each warehouse (goal: at most 100 ms on
   the large one, large ÷ small at most 1.5 — it follows the number of days, not of rows) and a
   one-month, one-country kpi_values() slice (goal: at most 50 ms) and explain_kpis() between a
   snapshot before the timed deltas and one after (goal: at most 100 ms); each the median of 5 calls.
   The driver's peak memory (RSS) is printed too (goal: under 1 GB, at ten million orders).
   The server has PostgreSQL's default settings (fsync on); a CHECKPOINT before each timed
   phase keeps one phase's writes from being flushed in another's time.
5. Freshness on the large warehouse (driver.bench.freshness): orders committed to staging at a steady
   rate, staged commit -> visible in fact_orders, p50 / p95 / max, with the follow loop
   (refresh_for; goal p95 <= 2 s) and with the plain pg_cron schedule (every minute).
6. The sustained rate on the large warehouse: the producer's rate doubled (from 1,000 orders a
   second) while follow mode keeps p95 staged -> visible within 5 s for a minute at each rate,
   then two more rates that halve the gap between the highest that held and the lowest that failed.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from driver.bench.dbt import DbtFigures, compare_with_dbt
from driver.bench.freshness import Freshness, FreshnessIncomplete, Sustained, measure, sustained_rate
from driver.core import db
from driver.core.errors import DriverError
from driver.core.migrate import migrate
from driver.core.output import render_table
from driver.core.progress import ProgressBar
from driver.servers.embedded import start_server
from driver.simulation.deltas import generate_delta
from driver.simulation.generator import COLUMNS, Batch
from driver.simulation.seed import seed_history
from driver.simulation.staging import copy_batch


@dataclass
class Figures:
    """Everything `globalcart bench` measured, and the table it prints."""
    small_orders: int
    large_orders: int
    delta_small: int  # staged rows of all deltas, per warehouse (equal when both had candidates enough)
    delta_large: int
    seed_large_seconds: float
    refresh_small: float
    refresh_large: float
    bare_small: float
    bare_large: float
    full_reload: float
    snapshot_small: float
    snapshot: float
    kpi_slice: float
    rounds: int
    freshness: list[Freshness] = field(default_factory=list)
    freshness_rate: int = 0
    freshness_seconds: float = 0
    peak_rss_mb: float = 0
    first_large: float = 0  # the first delta after the seed, not timed
    notes: list[str] = field(default_factory=list)  # freshness runs that did not complete
    timeline: float = 0  # order_timeline() of one order the deltas changed, large warehouse
    as_of_one_order: float = 0  # fact_orders_as_of(t) WHERE order_id = …, large
    kpi_as_of: float = 0  # kpi_values_as_of(t), whole large warehouse
    sustained: Sustained | None = None  # the highest rate follow mode keeps up with, large warehouse
    dbt: DbtFigures | None = None  # the refresh beside dbt on one delta of orders, large warehouse
    plain_small: float = 0  # the same deltas refreshed with kpi_attribution off
    explain: float = 0  # explain_kpis() between snapshots before and after the timed deltas, large
    plain_large: float = 0

    @property
    def large_over_small(self) -> float:
        """Time per delta row, large ÷ small."""
        return (self.refresh_large / self.delta_large) / (self.refresh_small / self.delta_small)

    @property
    def bare_large_over_small(self) -> float:
        """The bare upserts' own large ÷ small per delta row: the part that is physics."""
        return (self.bare_large / self.delta_large) / (self.bare_small / self.delta_small)

    def table(self) -> str:
        """The figures as the tables `globalcart bench` prints."""
        rows = [
            [f"seed {self.large_orders:,} orders (staging + refresh)", f"{self.seed_large_seconds:.1f} s",
             f"{self.large_orders / self.seed_large_seconds:,.0f} orders/s"],
            [f"first delta after seeding {self.large_orders:,} orders (cold; not in the figures below)",
             f"{self.first_large:.2f} s", ""],
            [f"refresh, warehouse of {self.small_orders:,} orders", f"{self.refresh_small:.2f} s",
             f"{self.delta_small / self.refresh_small:,.0f} rows/s"],
            [f"refresh, warehouse of {self.large_orders:,} orders", f"{self.refresh_large:.2f} s",
             f"{self.delta_large / self.refresh_large:,.0f} rows/s"],
            ["  large ÷ small, per delta row", f"{self.large_over_small:.2f}", ""],
            ["  the same for the bare upserts (the physical part)", f"{self.bare_large_over_small:.2f}", ""],
            ["  the refresh's ratio minus the bare one's (goal ≤ 0.1)",
             f"{self.large_over_small - self.bare_large_over_small:.2f}", ""],
            ["bare guarded upsert of the same rows (large)", f"{self.bare_large:.2f} s",
             f"{self.delta_large / self.bare_large:,.0f} rows/s"],
            ["  refresh ÷ bare (goal ≤ 2.5, stretch 2)", f"{self.refresh_large / self.bare_large:.2f}", ""],
            ["refresh without the attribution (kpi_attribution off), small", f"{self.plain_small:.2f} s", ""],
            ["refresh without the attribution (kpi_attribution off), large", f"{self.plain_large:.2f} s", ""],
            ["  what the attribution adds, small / large (goal ≤ +10 %)",
             f"{self.refresh_small / self.plain_small - 1:+.1%} / {self.refresh_large / self.plain_large - 1:+.1%}",
             ""],
            [f"full reload of the {self.large_orders:,}-order warehouse", f"{self.full_reload:.1f} s", ""],
            ["  full reload ÷ refresh of one delta", f"{self.full_reload * self.rounds / self.refresh_large:.0f}", ""],
            ["snapshot_kpis(), small warehouse", f"{self.snapshot_small:.3f} s", ""],
            ["snapshot_kpis(), large warehouse", f"{self.snapshot:.3f} s", ""],
            ["  large ÷ small (goals: ≤ 1.5, and large ≤ 0.100 s)", f"{self.snapshot / self.snapshot_small:.2f}", ""],
            ["kpi_values(), one month, one country, large (goal ≤ 0.050 s)", f"{self.kpi_slice:.3f} s", ""],
            ["explain_kpis() across the timed deltas, large (goal ≤ 0.100 s)", f"{self.explain:.3f} s", ""],
            ["order_timeline() of one order, large", f"{self.timeline:.3f} s", ""],
            ["fact_orders_as_of() of one order, large", f"{self.as_of_one_order:.3f} s", ""],
            ["kpi_values_as_of(), whole large warehouse", f"{self.kpi_as_of:.1f} s", ""],
            ["driver's peak memory, RSS (goal < 1 GB)", f"{self.peak_rss_mb:,.0f} MB", ""],
        ]  # fmt: skip
        text = (f"deltas: {self.delta_small:,} staged rows in all (small), {self.delta_large:,} (large)\n"
                + render_table(["measure", "time / ratio", "throughput"], rows))  # fmt: skip
        if self.freshness:
            text += (
                f"\n\nfreshness, {self.large_orders:,}-order warehouse: {self.freshness_rate} orders/s with their "
                f"items and payments committed to staging for {self.freshness_seconds:.0f} s; "
                "staged commit -> visible in fact_orders (goal for follow mode: p95 <= 2 s)\n"
                + render_table(["refreshed by", "orders", "p50", "p95", "max"], [f.row() for f in self.freshness])
            )
        if self.sustained:
            held = self.sustained
            text += (
                f"\n\nsustained rate, {self.large_orders:,}-order warehouse, follow mode: orders a second (with items "
                f"and payments) committed for {held.seconds:.0f} s at each rate, doubled while p95 staged -> visible "
                f"<= {held.limit_p95:g} s, then the gap to the first rate that failed halved twice\n"
                + render_table(["rate asked", "orders/s committed", "p95", ""], held.rows())
                + f"\n  highest rate held: {held.held:,} orders/s ({held.stopped})"
            )
        if self.dbt:
            text += (
                f"\n\nbeside dbt, {self.large_orders:,}-order warehouse: one delta of {self.dbt.changed:,} newer "
                f"versions of stored orders and {self.dbt.new:,} new ones; dbt-core {self.dbt.version}: an incremental "
                "fact_orders model (merge) and the incremental daily summary that recomputes every day a changed order "
                "belongs to\n"
                + render_table(["measure", "time / ratio"], self.dbt.rows())
            )
        for note in self.notes:
            text += f"\n{note}"
        return text


def refresh_delta(
    conn: psycopg.Connection, since: datetime, until: datetime, seed: int, new_orders: int
) -> tuple[Batch, float]:
    """One delta of the window (no duplicates, nothing out of order: the same rows wherever the
    warehouse is the same), staged, then refreshed by one timed call; the call must succeed."""
    batch, _ = generate_delta(conn, since=since, until=until, seed=seed, new_orders=new_orders,
                              duplicate_share=0.0, out_of_order_share=0.0)  # fmt: skip
    conn.commit()
    copy_batch(conn, batch)
    started = time.perf_counter()
    summary = db.run_refresh(conn)
    seconds = time.perf_counter() - started
    if summary["status"] != "ok":
        raise RuntimeError(f"a benchmark refresh did not succeed: {summary.get('error') or summary['status']}")
    return batch, seconds


def _median_of(conn: psycopg.Connection, sql: str, params: tuple = (), calls: int = 5) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.execute(sql, params).fetchall()
        conn.commit()
        times.append(time.perf_counter() - started)
    return sorted(times)[calls // 2]


def _kpi_slice(conn: psycopg.Connection) -> float:
    """A one-month, one-country kpi_values() slice: the last whole month of the history, its
    busiest country."""
    month, country = conn.execute(
        """SELECT date_trunc('month', max(order_day) - 31)::date,
                  (SELECT country_code FROM globalcart.kpi_order_summary GROUP BY 1 ORDER BY sum(orders) DESC LIMIT 1)
             FROM globalcart.kpi_order_summary"""
    ).fetchone()
    conn.commit()
    return _median_of(
        conn,
        "SELECT * FROM globalcart.kpi_values(%s::date::timestamp AT TIME ZONE 'UTC', "
        "(%s::date + interval '1 month') AT TIME ZONE 'UTC', %s, NULL)",
        (month, month, country),
    )


def _history_reads(conn: psycopg.Connection) -> tuple[float, float, float]:
    """The history reads of docs/contract.md §7 on the warehouse after its deltas: the timeline and a
    one-order as-of read of the order last changed (index probes), and the KPIs as of the end of
    the middle delta (every fact and its audit rows read once)."""
    order_id, at = conn.execute(
        """SELECT (SELECT order_id FROM globalcart.audit_fact_orders ORDER BY audit_id DESC LIMIT 1),
                  (SELECT finished_at FROM globalcart.etl_runs WHERE status = 'ok'
                    ORDER BY run_id DESC OFFSET 1 LIMIT 1)"""
    ).fetchone()
    conn.commit()
    timeline = _median_of(conn, "SELECT * FROM globalcart.order_timeline(%s)", (order_id,))
    one = _median_of(conn, "SELECT * FROM globalcart.fact_orders_as_of(%s) WHERE order_id = %s", (at, order_id))
    return timeline, one, _median_of(conn, "SELECT * FROM globalcart.kpi_values_as_of(%s)", (at,), calls=1)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _stored_columns(conn: psycopg.Connection, table: str) -> str:
    """The columns of a globalcart table that take values (not the generated ones)."""
    row = conn.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
        (f"globalcart.{table}",),
    ).fetchone()
    assert row is not None
    return row[0]


def _prepare_bare(conn: psycopg.Connection) -> None:
    """In a clone of the warehouse: the facts without their audit triggers, and plain tables to
    load a delta into."""
    for source in db.sources(conn):
        conn.execute(f"ALTER TABLE globalcart.{source.fact_table} DISABLE TRIGGER USER")
        for (partition,) in conn.execute(  # (a partitioned table's partitions have their own copies)
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            (f"globalcart.{source.fact_table}",),
        ).fetchall():
            conn.execute(f"ALTER TABLE {partition} DISABLE TRIGGER USER")
        conn.execute(f"CREATE TABLE bench_delta_{source.name} AS SELECT {', '.join(COLUMNS[source.name])} "
                     f"FROM globalcart.{source.staging_table} LIMIT 0")  # fmt: skip
    conn.commit()


def _bare_upsert(conn: psycopg.Connection, batch: Batch) -> float:
    """Load the delta into the plain tables; time only the guarded upserts into the facts."""
    statements = []
    for source in db.sources(conn):
        columns = ", ".join(COLUMNS[source.name])
        conn.execute(f"TRUNCATE bench_delta_{source.name}")
        with conn.cursor() as cur, cur.copy(f"COPY bench_delta_{source.name} FROM STDIN") as copy:
            for row in batch.rows[source.name]:
                copy.write_row(row)
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[source.name] if c not in source.primary_key)
        append_only = source.name == "funnel_events"  # docs/contract.md §2.5
        action = "NOTHING" if append_only else f"UPDATE SET {sets} WHERE EXCLUDED.updated_at > t.updated_at"
        if "order_ts" in source.primary_key and "order_ts" not in COLUMNS[source.name]:
            # an order-grain child is stored in its order's partition: the bare upsert looks it up too
            selected = ", ".join(f"d.{c}" for c in COLUMNS[source.name])
            statements.append(f"INSERT INTO globalcart.{source.fact_table} AS t ({columns}, order_ts) "
                              f"SELECT {selected}, o.order_ts FROM bench_delta_{source.name} d "
                              f"JOIN globalcart.fact_orders o ON o.order_id = d.order_id "
                              f"ON CONFLICT ({', '.join(source.primary_key)}) DO {action}")  # fmt: skip
            continue
        statements.append(f"INSERT INTO globalcart.{source.fact_table} AS t ({columns}) SELECT {columns} "
                          f"FROM bench_delta_{source.name} ON CONFLICT ({', '.join(source.primary_key)}) "
                          f"DO {action}")  # fmt: skip
    conn.commit()
    started = time.perf_counter()
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    return time.perf_counter() - started


def _full_reload(conn: psycopg.Connection) -> float:
    """Every dimension and fact copied into a fresh table that has the same indexes; the copies are
    dropped afterwards (left, autovacuum would work through them while the freshness is measured)."""
    tables = [s.fact_table for s in db.sources(conn)]
    started = time.perf_counter()
    for table in tables:
        columns = _stored_columns(conn, table)
        conn.execute(f"CREATE TABLE bench_reload_{table} (LIKE globalcart.{table} INCLUDING ALL)")
        conn.execute(f"INSERT INTO bench_reload_{table} ({columns}) SELECT {columns} FROM globalcart.{table}")
    conn.commit()
    seconds = time.perf_counter() - started
    for table in tables:
        conn.execute(f"DROP TABLE bench_reload_{table}")
    conn.commit()
    return seconds


def run_bench(
    small: int,
    large: int,
    delta_orders: int,
    seed: int = 360,
    rounds: int = 3,
    freshness_seconds: float = 60,
    freshness_rate: int = 200,
    sustained_seconds: float = 60,
    sustained_from: int = 1000,
    dbt: str | None = None,
    log: Callable[[str], None] = print,
) -> Figures:
    """Seed both warehouses, then refresh ``rounds`` deltas into each (summed: less noise), each
    delta upserted bare into a clone of the warehouse right after its refresh."""
    server = start_server(cron_database="postgres")  # PostgreSQL defaults; durable
    try:
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
            for name in ("small", "large"):
                admin.execute(f"CREATE DATABASE bench_{name}")
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")  # for the plain schedule's freshness
        until = datetime.now(UTC).replace(microsecond=0)
        as_of = until - timedelta(days=1)
        step = (until - as_of) / rounds
        refresh = {"small": 0.0, "large": 0.0}
        bare = {"small": 0.0, "large": 0.0}
        plain = {"small": 0.0, "large": 0.0}  # refreshed with kpi_attribution off
        delta_rows = {"small": 0, "large": 0}
        seed_large = reload = kpi_slice = 0.0
        history = (0.0, 0.0, 0.0)
        snapshot = {"small": 0.0, "large": 0.0}
        first = {"small": 0.0, "large": 0.0}
        for name, orders in (("small", small), ("large", large)):
            dsn = server.dsn(f"bench_{name}")
            with psycopg.connect(dsn) as conn:
                migrate(conn, with_cron=False)
                report = seed_history(conn, dsn, orders=orders, seed=seed, as_of=as_of,
                                      progress=ProgressBar(f"seed {name} warehouse"))  # fmt: skip
                seed_large = report.seconds
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
                # the bare upserts run on this clone of the warehouse as it is now, each delta right
                # after the refresh of the same delta (both sides warmed by the same first delta)
                admin.execute(f"CREATE DATABASE bench_bare_{name} TEMPLATE bench_{name}")
                # and this one refreshes the same deltas without recording why the KPIs moved
                admin.execute(f"CREATE DATABASE bench_plain_{name} TEMPLATE bench_{name}")
            with (
                psycopg.connect(dsn, autocommit=True) as conn,
                psycopg.connect(server.dsn(f"bench_bare_{name}")) as bare_conn,
                psycopg.connect(server.dsn(f"bench_plain_{name}"), autocommit=True) as plain_conn,
            ):
                _prepare_bare(bare_conn)
                plain_conn.execute("UPDATE globalcart.etl_settings SET value = 'off' WHERE name = 'kpi_attribution'")
                # A first delta, not timed, into both: the first refresh after a bulk load reads the
                # pages of the orders it touches from disk (PostgreSQL's default 128 MB of shared
                # buffers); the timed deltas measure the refresh as it runs from then on, and the bare
                # upsert on a clone as warm. Its time is printed.
                batch, first[name] = refresh_delta(conn, as_of - step, as_of, seed + 50, delta_orders)
                _bare_upsert(bare_conn, batch)
                refresh_delta(plain_conn, as_of - step, as_of, seed + 50, delta_orders)
                log(
                    f"{name} warehouse, first delta after the seed (not timed): {batch.count():,} rows refreshed in "
                    f"{first[name]:.2f} s"
                )
                conn.execute("CHECKPOINT")  # each timed phase starts without the seed's dirty pages to flush
                conn.execute("SELECT globalcart.snapshot_kpis('bench_start')")  # (for explain_kpis, below)
                for n in range(rounds):
                    batch, seconds = refresh_delta(conn, as_of + step * n, as_of + step * (n + 1), seed + 1 + n,
                                                   delta_orders)  # fmt: skip
                    delta_rows[name] += batch.count()
                    refresh[name] += seconds
                    bare_seconds = _bare_upsert(bare_conn, batch)
                    bare[name] += bare_seconds
                    same, plain_seconds = refresh_delta(plain_conn, as_of + step * n, as_of + step * (n + 1),
                                                        seed + 1 + n, delta_orders)  # fmt: skip
                    if same.count() != batch.count():
                        raise RuntimeError("the copy without attribution was given another delta than the warehouse")
                    plain[name] += plain_seconds
                    log(f"{name} warehouse, delta {n + 1}/{rounds}: {batch.count():,} rows refreshed in "
                        f"{seconds:.2f} s, bare guarded upsert {bare_seconds:.2f} s, refresh without attribution "
                        f"{plain_seconds:.2f} s")  # fmt: skip
                snapshot[name] = _median_of(conn, "SELECT globalcart.snapshot_kpis('bench')")
                explain = _median_of(conn, "SELECT * FROM globalcart.explain_kpis('bench_start', 'bench')")
                log(f"{name} warehouse: snapshot_kpis() in {snapshot[name] * 1000:.1f} ms")
                if name == "large":
                    kpi_slice = _kpi_slice(conn)
                    history = _history_reads(conn)
                    log(f"large warehouse: order_timeline() {history[0] * 1000:.1f} ms, one-order as-of read "
                        f"{history[1] * 1000:.1f} ms, kpi_values_as_of() {history[2]:.1f} s")  # fmt: skip
                    reload = _full_reload(conn)
            with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE bench_bare_{name}")  # (its disk, and its cache, for what follows)
                admin.execute(f"DROP DATABASE bench_plain_{name}")
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
            admin.execute("CHECKPOINT")
        freshness: list[Freshness] = []
        notes: list[str] = []
        for mode in ("follow", "minute") if freshness_seconds > 0 else ():
            try:
                freshness.append(measure(server.dsn("bench_large"), mode, freshness_seconds, freshness_rate,
                                         seed + 100, log))  # fmt: skip
            except FreshnessIncomplete as exc:  # a figure too: reported, and the others still printed
                log(str(exc))
                notes.append(str(exc))
        sustained = None
        if sustained_seconds > 0:
            sustained = sustained_rate(server.dsn("bench_large"), sustained_seconds, sustained_from, seed + 200,
                                       log=log)  # fmt: skip
        figures = Figures(small, large, delta_rows["small"], delta_rows["large"], seed_large, refresh["small"],
                       refresh["large"], bare["small"], bare["large"], reload, snapshot["small"], snapshot["large"],
                       kpi_slice, rounds, freshness, freshness_rate, freshness_seconds, peak_rss_mb(),
                       first["large"], notes, *history)  # fmt: skip
        figures.sustained = sustained
        figures.plain_small, figures.plain_large = plain["small"], plain["large"]
        figures.explain = explain  # (the large warehouse's, measured last)
        if dbt:
            log("beside dbt: the same delta of orders refreshed, and run through dbt's models")
            try:  # (a figure that cannot be had is said so; the others are still printed)
                figures.dbt = compare_with_dbt(server.dsn("postgres"), server.dsn, "bench_large", dbt,
                                               changed=min(10_000, large // 100), new=min(10_000, large // 100),
                                               seed=seed + 300)  # fmt: skip
            except (DriverError, psycopg.Error) as exc:
                log(f"beside dbt: {exc}")
                figures.notes.append(f"beside dbt: not measured ({exc})")
        else:
            figures.notes.append("beside dbt: not measured (no dbt: bash .ci/setup.sh installs it into .venv-dbt, "
                                 "or pass --dbt PATH)")  # fmt: skip
        return figures
    finally:
        server.stop()
