"""CONTRACT 2.1: every committed staged row is applied, deferred or rejected by exactly one
refresh — with producers writing concurrently, refreshes racing, and a refresh cancelled."""

import random
import threading
import time

import psycopg
import pytest
from helpers import fetch, item, order, refresh, scalar, stage, staged_count, ts

pytestmark = pytest.mark.slow

PRODUCERS = 4
TRANSACTIONS_PER_PRODUCER = 40


def _produce(dsn: str, producer: int, errors: list) -> None:
    """Many small transactions, each held open a moment before it commits, so commit order
    differs from identity order and from the order transactions began."""
    rng = random.Random(producer)
    try:
        with psycopg.connect(dsn) as conn:
            for n in range(TRANSACTIONS_PER_PRODUCER):
                order_id = producer * 100_000 + n
                with conn.transaction():
                    if n % 3 == 0:  # sometimes the item comes first, in its own transaction
                        stage(conn, "order_items", [item(order_id, order_id)])
                        conn.execute("SELECT pg_sleep(%s)", (rng.uniform(0, 0.02),))
                with conn.transaction():
                    stage(conn, "orders", [order(order_id, updated_at=ts(n))])
                    if n % 3:
                        stage(conn, "order_items", [item(order_id, order_id)])
                    conn.execute("SELECT pg_sleep(%s)", (rng.uniform(0, 0.03),))
    except Exception as exc:  # surfaced by the test, not swallowed
        errors.append(exc)


def _refresh_until(dsn: str, stop: threading.Event, results: list, errors: list) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                results.append(refresh(conn))
    except Exception as exc:
        errors.append(exc)


def test_concurrent_producers_and_refreshes_lose_nothing_and_apply_nothing_twice(dsn):
    errors: list = []
    results: list = []
    stop = threading.Event()
    refreshers = [threading.Thread(target=_refresh_until, args=(dsn, stop, results, errors)) for _ in range(2)]
    producers = [threading.Thread(target=_produce, args=(dsn, p, errors)) for p in range(1, PRODUCERS + 1)]
    for t in refreshers + producers:
        t.start()
    for t in producers:
        t.join()
    stop.set()
    for t in refreshers:
        t.join()
    assert errors == []

    with psycopg.connect(dsn, autocommit=True) as conn:
        results.append(refresh(conn))  # everything committed before this call is now handled
        expected = sorted(p * 100_000 + n for p in range(1, PRODUCERS + 1) for n in range(TRANSACTIONS_PER_PRODUCER))
        assert [r[0] for r in fetch(conn, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1")] == expected
        assert [r[0] for r in fetch(conn, "SELECT order_id FROM globalcart.fact_order_items ORDER BY 1")] == expected
        assert staged_count(conn) == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_rejects") == 0

        ran = [r for r in results if r["status"] == "ok"]
        assert len(ran) == scalar(conn, "SELECT count(*) FROM globalcart.etl_runs")
        # exactly once: each staged row was claimed once, plus once more per deferral
        for source in ("orders", "order_items"):
            claimed = sum(r[source]["claimed"] for r in ran)
            deferred = sum(r[source]["deferred"] for r in ran)
            inserted = sum(r[source]["inserted"] for r in ran)
            assert claimed - deferred == len(expected), source
            assert inserted == len(expected), source
        assert sum(r["orders"]["stale"] + r["orders"]["duplicate"] for r in ran) == 0
    assert len(ran) > 3, "the refreshes should have overlapped the producers"


def test_refresh_cancelled_midway_leaves_no_trace_and_the_next_applies_everything(dsn):
    rows = 200_000
    with psycopg.connect(dsn, autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY globalcart.stg_orders (order_id, customer_id, order_ts, order_status, channel, country_code, "
                "currency, gross_amount, discount_amount, shipping_amount, net_amount, updated_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(rows):
                copy.write_row((i, i % 1000, ts(0), "PLACED", "web", "US", "USD", 100, 10, 5, 95, ts(0)))

        outcome: list = []

        def run() -> None:
            with psycopg.connect(dsn, autocommit=True) as victim:
                outcome.append(victim.info.backend_pid)
                try:
                    outcome.append(refresh(victim))
                except psycopg.errors.QueryCanceled as exc:
                    outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 30
        while not outcome and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = outcome[0]
        while time.monotonic() < deadline and not scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
            "AND query LIKE '%%run_incremental_refresh%%'",
            pid,
        ):
            time.sleep(0.01)
        time.sleep(0.5)  # well into the batch
        assert scalar(conn, "SELECT pg_cancel_backend(%s)", pid)
        worker.join()
        assert isinstance(outcome[1], psycopg.errors.QueryCanceled), "the refresh finished before the cancel"

        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == rows
        for table in ("fact_orders", "dim_customer", "audit_fact_orders", "etl_runs", "etl_rejects"):
            assert scalar(conn, f"SELECT count(*) FROM globalcart.{table}") == 0, table
        assert scalar(conn, "SELECT count(watermark_ts) FROM globalcart.etl_watermarks") == 0

        summary = refresh(conn)
        assert summary["orders"]["inserted"] == rows
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == rows
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 0
