"""docs/contract.md §2.1: every committed staged row is applied, deferred or rejected by exactly one
refresh — with producers writing concurrently and refreshes racing. (A refresh cancelled midway,
killed or stopped with the server: test_failures.py and test_crash.py.)"""

import random
import threading

import psycopg
import pytest
from helpers import fetch, item, order, refresh, scalar, stage, staged_count, ts

pytestmark = pytest.mark.slow

PRODUCERS = 4
TRANSACTIONS_PER_PRODUCER = 40  # at least; more while fewer than OVERLAPPING_REFRESHES have run
MAX_TRANSACTIONS_PER_PRODUCER = 400
OVERLAPPING_REFRESHES = 4


def _ran(results: list) -> int:
    return sum(1 for r in list(results) if r["status"] == "ok" and r["run_id"] is not None)


def _produce(dsn: str, producer: int, results: list, written: dict, errors: list) -> None:
    """Many small transactions, each held open a moment before it commits, so commit order
    differs from identity order and from the order transactions began. A producer goes on past
    its first TRANSACTIONS_PER_PRODUCER until the refreshes have overlapped it several times (a
    slow layout, such as Citus, runs fewer refreshes in the same time)."""
    rng = random.Random(producer)
    n = 0
    try:
        with psycopg.connect(dsn) as conn:
            while n < TRANSACTIONS_PER_PRODUCER or (
                _ran(results) < OVERLAPPING_REFRESHES and n < MAX_TRANSACTIONS_PER_PRODUCER
            ):
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
                n += 1
    except Exception as exc:  # surfaced by the test, not swallowed
        errors.append(exc)
    finally:
        written[producer] = n


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
    written: dict[int, int] = {}
    producers = [
        threading.Thread(target=_produce, args=(dsn, p, results, written, errors)) for p in range(1, PRODUCERS + 1)
    ]
    for t in refreshers + producers:
        t.start()
    for t in producers:
        t.join()
    ran_while_producing = _ran(results)
    stop.set()
    for t in refreshers:
        t.join()
    assert errors == []

    with psycopg.connect(dsn, autocommit=True) as conn:
        results.append(refresh(conn))  # everything committed before this call is now handled
        expected = sorted(p * 100_000 + n for p, count in written.items() for n in range(count))
        assert len(written) == PRODUCERS and min(written.values()) >= TRANSACTIONS_PER_PRODUCER
        assert [r[0] for r in fetch(conn, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1")] == expected
        assert [r[0] for r in fetch(conn, "SELECT order_id FROM globalcart.fact_order_items ORDER BY 1")] == expected
        assert staged_count(conn) == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_rejects") == 0

        ran = [r for r in results if r["status"] == "ok" and r["run_id"] is not None]
        assert len(ran) == scalar(conn, "SELECT count(*) FROM globalcart.etl_runs")  # calls that found nothing: none
        assert all(r["status"] in ("ok", "skipped") for r in results)
        # exactly once: each staged row was claimed once, plus once more per deferral
        for source in ("orders", "order_items"):
            claimed = sum(r[source]["claimed"] for r in ran)
            deferred = sum(r[source]["deferred"] for r in ran)
            inserted = sum(r[source]["inserted"] for r in ran)
            assert claimed - deferred == len(expected), source
            assert inserted == len(expected), source
        assert sum(r["orders"]["stale"] + r["orders"]["duplicate"] for r in ran) == 0
    assert ran_while_producing >= OVERLAPPING_REFRESHES, "the refreshes should have overlapped the producers"
