"""docs/contract.md §2.9 (one at a time), 2.10 (watermarks), 2.11 (run log and summary)."""

import time

import psycopg
from helpers import SOURCES, fetch, order, payment, refresh, scalar, stage, ts

COUNTS = {"claimed", "inserted", "updated", "stale", "duplicate", "rejected", "deferred"}


def test_second_refresh_while_one_runs_is_skipped_and_changes_nothing(dsn):
    with (
        psycopg.connect(dsn, autocommit=True) as producer,
        psycopg.connect(dsn) as first,
        psycopg.connect(dsn, autocommit=True) as second,
    ):
        stage(producer, "orders", [order(1)])
        first.execute("SELECT globalcart.run_incremental_refresh()")  # transaction left open: lock held
        stage(producer, "orders", [order(2)])
        runs_before = scalar(producer, "SELECT count(*) FROM globalcart.etl_runs")

        second.execute("SET statement_timeout = '5s'")  # a skip must not wait for the lock
        started = time.monotonic()
        skipped = refresh(second)
        assert time.monotonic() - started < 5
        assert skipped["status"] == "skipped" and skipped["run_id"] is None
        assert all(skipped[s]["claimed"] == 0 for s in SOURCES)
        assert scalar(producer, "SELECT count(*) FROM globalcart.etl_runs") == runs_before
        # order 1 is claimed by the first refresh, not yet committed: others still see it staged
        assert fetch(producer, "SELECT order_id FROM globalcart.stg_orders ORDER BY 1") == [(1,), (2,)]

        first.commit()
        done = refresh(second)
        assert done["status"] == "ok" and done["orders"]["inserted"] == 1
        assert fetch(producer, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1") == [(1,), (2,)]


def test_watermark_is_the_greatest_updated_at_applied(conn):
    assert fetch(conn, "SELECT count(*), count(watermark_ts) FROM globalcart.etl_watermarks") == [(8, 0)]
    stage(conn, "orders", [order(1, updated_at=ts(5)), order(2, updated_at=ts(9)), order(3, updated_at=ts(7))])
    run_id = refresh(conn)["run_id"]
    assert fetch(
        conn, "SELECT watermark_ts, last_run_id FROM globalcart.etl_watermarks WHERE source_name = 'orders'"
    ) == [(ts(9), run_id)]
    assert scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'payments'") is None


def test_watermark_never_moves_backwards_and_ignores_stale_and_rejected_rows(conn):
    stage(conn, "orders", [order(1, updated_at=ts(9))])
    refresh(conn)
    stage(
        conn,
        "orders",
        [
            order(2, updated_at=ts(3)),  # applied, older than the watermark
            order(1, updated_at=ts(1)),  # stale
            order(3, currency="XXX", updated_at=ts(50)),  # rejected
        ],
    )
    summary = refresh(conn)
    assert summary["orders"]["inserted"] == 1
    assert scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'") == ts(9)


def test_row_older_than_the_watermark_is_still_applied(conn):
    stage(conn, "orders", [order(1, updated_at=ts(100))])
    refresh(conn)
    stage(conn, "orders", [order(2, updated_at=ts(1))])  # a late producer, far behind the watermark
    summary = refresh(conn)
    assert summary["orders"]["inserted"] == 1
    assert fetch(conn, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1") == [(1,), (2,)]


def test_every_call_that_runs_writes_one_run_row_equal_to_its_summary(conn):
    stage(conn, "orders", [order(1), order(2, currency="XXX")])
    stage(conn, "payments", [payment(1, 1), payment(2, 99)])
    summary = refresh(conn)
    rows = fetch(
        conn,
        """SELECT run_id, status, stats, started_at <= finished_at, rows_claimed, rows_applied,
                                 rows_rejected, rows_deferred FROM globalcart.etl_runs""",
    )
    assert len(rows) == 1
    run_id, status, stats, ordered, claimed, applied, rejected, deferred = rows[0]
    assert (run_id, status, stats, ordered) == (summary["run_id"], "ok", summary, True)
    assert (claimed, applied, rejected, deferred) == (4, 2, 1, 1)
    stage(conn, "orders", [order(3)])
    refresh(conn)
    assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == 2


def test_a_call_that_finds_nothing_staged_writes_no_run_row(conn):
    stage(conn, "orders", [order(1)])
    refresh(conn)
    for _ in range(3):
        summary = refresh(conn)
        assert (summary["status"], summary["run_id"]) == ("ok", None)
        assert all(summary[s]["claimed"] == 0 and summary[s]["backlog"] == 0 for s in SOURCES)
    assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == 1


def test_summary_has_every_count_for_every_source_and_they_add_up(conn):
    stage(conn, "orders", [order(1), order(1), order(1, updated_at=ts(-1)), order(2, net_amount=-1)])
    stage(conn, "payments", [payment(1, 1), payment(2, 404)])
    summary = refresh(conn)
    assert summary["status"] == "ok" and isinstance(summary["run_id"], int)
    for source in SOURCES:
        counts = summary[source]
        assert COUNTS <= set(counts), source
        assert counts["claimed"] == sum(counts[c] for c in COUNTS - {"claimed"}), source
    assert (
        summary["orders"]["inserted"],
        summary["orders"]["duplicate"],
        summary["orders"]["stale"],
        summary["orders"]["rejected"],
    ) == (1, 1, 1, 1)
    assert summary["payments"]["deferred"] == 1
    assert summary["totals"]["claimed"] == 6
    assert summary["sources"] == {source: summary[source] for source in SOURCES}


def test_refresh_with_nothing_staged_takes_the_short_path(conn):
    """pg_cron queues missed ticks, so an empty refresh must be cheap: it claims nothing and
    does not even create its work tables."""
    conn.execute("SET track_functions = 'pl'")
    with conn.transaction():
        summary = refresh(conn)
        created = scalar(conn, "SELECT count(*) FROM pg_stat_xact_user_functions WHERE funcname = 'create_work_tables'")
    assert summary["status"] == "ok" and created == 0
    assert all(summary[s]["claimed"] == 0 for s in SOURCES)
    assert summary["duration_ms"] < 1000  # a loose bound; the speed itself is the benchmark's business


def test_work_tables_are_created_afresh_by_each_call_and_never_reused(conn):
    """The refresh runs with its owner's rights: a table the caller prepared under a work table's
    name (with a trigger, say) must never be written by it. Each call creates its own and drops
    them; two calls in one transaction work; a prepared table makes the call fail, recorded."""
    stage(conn, "orders", [order(1)])
    with conn.transaction():
        refresh(conn)
        assert scalar(conn, "SELECT to_regclass('pg_temp.gc_claim_orders')") is None  # dropped at its end
        stage(conn, "orders", [order(2)])
        assert refresh(conn)["orders"]["inserted"] == 1
    conn.execute("CREATE TEMPORARY TABLE gc_claim_orders (order_id bigint)")
    stage(conn, "orders", [order(3)])
    summary = refresh(conn)
    assert summary["status"] == "failed" and summary["error"]["sqlstate"] == "42P07"
    assert "DROP TABLE pg_temp.gc_claim_orders" in summary["error"]["hint"]
    assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 1
    conn.execute("DROP TABLE pg_temp.gc_claim_orders")
    assert refresh(conn)["orders"]["inserted"] == 1
