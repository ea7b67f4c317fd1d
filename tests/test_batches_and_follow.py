"""docs/contract.md §5.2 (bounded batches, backlog, drain_staging) and 5.3 / section 4 (follow mode:
refresh_for, and the follow job of schedule_incremental_refresh)."""

import threading
import time

import psycopg
import pytest
from helpers import fetch, item, order, refresh, scalar, stage, staged_count


def _notices(conn: psycopg.Connection) -> list[str]:
    seen: list[str] = []
    conn.add_notice_handler(lambda diag: seen.append(diag.message_primary or ""))
    return seen


def test_a_call_claims_at_most_max_rows_per_run_of_each_source_earliest_first(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = '3' WHERE name = 'max_rows_per_run'")
    stage(conn, "orders", [order(i) for i in range(1, 6)])
    stage(conn, "order_items", [item(i, i) for i in (5, 4, 3, 2, 1)])  # staged in this order

    first = refresh(conn)
    assert (first["orders"]["claimed"], first["orders"]["backlog"]) == (3, 2)
    assert (first["order_items"]["claimed"], first["order_items"]["backlog"]) == (3, 2)
    assert first["totals"]["backlog"] == 4
    assert fetch(conn, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1") == [(1,), (2,), (3,)]
    # items 5 and 4 came first, but their orders are still in the backlog: they wait for them
    assert (first["order_items"]["inserted"], first["order_items"]["deferred"]) == (1, 2)

    # the waiting items keep their place (earliest staged first), ahead of items 2 and 1
    second = refresh(conn)
    assert second["orders"]["inserted"] == 2 and second["orders"]["backlog"] == 0
    assert (second["order_items"]["inserted"], second["order_items"]["backlog"]) == (3, 1)
    assert fetch(conn, "SELECT order_id FROM globalcart.stg_order_items") == [(1,)]
    third = refresh(conn)
    assert third["order_items"]["inserted"] == 1 and third["totals"]["backlog"] == 0
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_order_items") == 5
    assert staged_count(conn) == 0


def test_a_waiting_row_left_unclaimed_by_the_bound_is_applied_once_its_order_is_there(conn):
    stage(conn, "order_items", [item(1, 1), item(2, 1)])
    assert refresh(conn)["order_items"]["deferred"] == 2  # both wait for order 1
    conn.execute("UPDATE globalcart.etl_settings SET value = '1' WHERE name = 'max_rows_per_run'")
    stage(conn, "orders", [order(1)])
    assert refresh(conn)["order_items"]["inserted"] == 1  # the bound left item 2 unexamined
    summary = refresh(conn)  # nothing fresh is staged, but item 2's order is there now
    assert summary["run_id"] is not None and summary["order_items"]["inserted"] == 1
    assert staged_count(conn) == 0


def test_backlog_counts_rows_staged_and_not_deferred(conn):
    stage(conn, "order_items", [item(1, 99)])  # its order never comes: deferred, not backlog
    summary = refresh(conn)
    assert (summary["order_items"]["deferred"], summary["order_items"]["backlog"]) == (1, 0)


def test_drain_staging_repeats_calls_until_no_backlog(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = '2' WHERE name = 'max_rows_per_run'")
    stage(conn, "orders", [order(i) for i in range(1, 8)])
    notices = _notices(conn)
    conn.execute("CALL globalcart.drain_staging()")
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 7
    assert fetch(conn, "SELECT count(*), sum(rows_claimed) FROM globalcart.etl_runs") == [(4, 7)]
    assert any("4 calls, 7 rows claimed" in n for n in notices), notices
    conn.execute("CALL globalcart.drain_staging()")  # nothing staged: one call, no run row
    assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == 4


def test_drain_staging_stops_with_an_error_when_a_call_fails_or_is_skipped(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as other:
        stage(conn, "orders", [order(1)])
        other.execute("SELECT globalcart.run_incremental_refresh()")  # holds the refresh lock, uncommitted
        with pytest.raises(psycopg.Error) as err:
            conn.execute("CALL globalcart.drain_staging()")
        assert err.value.diag.sqlstate == "GC005" and "another refresh is running" in err.value.diag.message_primary
        other.rollback()

        conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("CALL globalcart.drain_staging()")
        assert err.value.diag.sqlstate == "GC005" and "GC001" in err.value.diag.message_primary
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs WHERE status = 'failed'") == 1  # committed


def _follow(dsn: str, run_for: str, pause: str, out: list) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        notices = _notices(conn)
        started = time.monotonic()
        conn.execute("CALL globalcart.refresh_for(%s, %s)", (run_for, pause))
        out.extend([time.monotonic() - started, notices])


def test_refresh_for_applies_rows_staged_while_it_runs_within_about_pause_plus_a_refresh(dsn):
    out: list = []
    loop = threading.Thread(target=_follow, args=(dsn, "4 seconds", "200 milliseconds", out))
    with psycopg.connect(dsn, autocommit=True) as producer:
        loop.start()
        latencies = []
        for n in range(1, 4):
            time.sleep(0.7)
            stage(producer, "orders", [order(n)])
            staged = time.monotonic()
            while not scalar(producer, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id = %s", n):
                assert time.monotonic() - staged < 3, "not applied while refresh_for runs"
                time.sleep(0.02)
            latencies.append(time.monotonic() - staged)
        loop.join()
        assert max(latencies) < 1.5, latencies
        elapsed, notices = out
        assert 3.9 < elapsed < 8, elapsed
        assert any("stopped: run_for has passed" in n for n in notices), notices
        # only the calls that found something wrote a run row
        assert scalar(producer, "SELECT count(*) FROM globalcart.etl_runs") == 3
        assert staged_count(producer) == 0


def test_refresh_for_stops_early_when_another_loop_or_refresh_is_running(dsn):
    out: list = []
    loop = threading.Thread(target=_follow, args=(dsn, "3 seconds", "100 milliseconds", out))
    loop.start()
    time.sleep(0.5)
    second: list = []
    _follow(dsn, "10 seconds", "100 milliseconds", second)
    assert second[0] < 2 and any("another follow loop is running" in n for n in second[1]), second
    loop.join()

    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as other:
        stage(conn, "orders", [order(1)])
        other.execute("SELECT globalcart.run_incremental_refresh()")  # a refresh in progress elsewhere
        third: list = []
        _follow(dsn, "10 seconds", "100 milliseconds", third)
        assert third[0] < 2 and any("another session's refresh is running" in n for n in third[1]), third
        other.rollback()


def test_refresh_for_stops_on_a_failed_call_and_within_max_run_time(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = '1 second' WHERE name = 'max_run_time'")
    out: list = []
    _follow(conn.info.dsn, "30 seconds", "100 milliseconds", out)
    assert out[0] < 3, out

    conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
    out = []
    _follow(conn.info.dsn, "30 seconds", "100 milliseconds", out)
    assert out[0] < 2 and any("failed" in n for n in out[1]), out
    assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs WHERE status = 'failed'") == 1


@pytest.mark.parametrize(("run_for", "pause"), [(None, "1 second"), ("-1 second", "1 second"), ("1 minute", "0")])
def test_refresh_for_refuses_bad_arguments(conn, run_for, pause):
    with pytest.raises(psycopg.Error) as err:
        conn.execute("CALL globalcart.refresh_for(%s, %s)", (run_for, pause))
    assert err.value.diag.sqlstate == "GC007"


def test_job_commands_for_plain_and_follow_mode(conn):
    plain = scalar(conn, "SELECT globalcart.refresh_job_command(false)")
    assert plain == (
        "SELECT pg_catalog.set_config('statement_timeout', globalcart.job_statement_timeout(), false); "
        "SELECT globalcart.run_incremental_refresh()"
    )
    assert scalar(conn, "SELECT globalcart.refresh_job_command(true)") == "CALL globalcart.refresh_for()"
    assert scalar(conn, "SELECT globalcart.job_statement_timeout()") == "900000"  # the default 15 minutes
    conn.execute("UPDATE globalcart.etl_settings SET value = '90 seconds' WHERE name = 'max_run_time'")
    assert scalar(conn, "SELECT globalcart.job_statement_timeout()") == "90000"
    conn.execute("UPDATE globalcart.etl_settings SET value = 'never' WHERE name = 'max_run_time'")
    assert scalar(conn, "SELECT globalcart.job_statement_timeout()") == "900000"  # still bounded


def test_counting_staging_reads_its_index_not_its_empty_pages(conn):
    """After a bulk load staging's heap is mostly empty pages; the counts (every refresh, health)
    go through the stg_id index instead of reading them all."""
    from helpers import stage_orders_in_bulk

    stage_orders_in_bulk(conn, range(1, 20_001))
    conn.commit()
    conn.execute("DELETE FROM globalcart.stg_orders WHERE stg_id < (SELECT max(stg_id) FROM globalcart.stg_orders)")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM globalcart.stg_orders")  # one row left at the end: the empty pages stay
    conn.autocommit = False
    assert scalar(conn, "SELECT pg_relation_size('globalcart.stg_orders') > 1000000")
    seq = "SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relname LIKE 'stg\\_%%'"
    before = scalar(conn, seq)
    assert fetch(conn, "SELECT staged FROM globalcart.staged_rows() WHERE source_name = 'orders'") == [(1,)]
    assert scalar(conn, seq) == before
    conn.rollback()


def test_a_large_batch_leaves_no_pages_in_the_work_tables_and_a_small_one_keeps_its_rows_for_the_next_call(conn):
    """A refresh that claimed more than 10,000 rows of a source truncates its work tables at its end
    (globalcart.drop_work_tables): emptied by DELETE at the next call, they would keep their pages —
    read by every later call until autovacuum, and on Citus, whose shards the size check at a call's
    start cannot see, planned for as if full (a one-order refresh after a seed: 2.9 s, not 0.3 s)."""
    from helpers import stage_orders_in_bulk

    stage_orders_in_bulk(conn, range(1, 12_001))
    conn.commit()
    assert refresh(conn)["orders"]["inserted"] == 12_000
    assert scalar(conn, "SELECT pg_relation_size('globalcart.work_orders')") == 0
    assert scalar(conn, "SELECT pg_relation_size('globalcart.work_kpi_orders')") == 0
    stage(conn, "orders", [order(20_000)])
    assert refresh(conn)["orders"]["inserted"] == 1
    # (a small batch's rows stay until the next call's DELETE: no TRUNCATE, no new files, for it)
    assert scalar(conn, "SELECT count(*) FROM globalcart.work_orders") == 1
