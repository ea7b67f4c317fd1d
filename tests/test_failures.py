"""docs/contract.md §5.1: bounded waits, recorded failures. A call that hits lock_timeout or max_run_time,
or fails for any other reason, changes nothing, returns status failed with the error instead of
raising, leaves a failed etl_runs row, and the next call retries the same rows. A setting that
cannot be parsed fails the call with a message naming it, recorded like any failure."""

import subprocess
import threading
import time

import psycopg
import pytest
from helpers import SOURCES, fetch, item, order, refresh, run_cli, scalar, stage, stage_orders_in_bulk, staged_count, ts

NOTHING_CHANGED = ("fact_orders", "fact_order_items", "audit_fact_orders", "etl_rejects", "dim_customer")


def _assert_failed_and_recorded(conn, summary, sqlstate):
    assert summary["status"] == "failed"
    assert summary["error"]["sqlstate"] == sqlstate and summary["error"]["message"]
    [(run_id, status, error, stats)] = fetch(
        conn, "SELECT run_id, status, error, stats FROM globalcart.etl_runs WHERE status = 'failed'"
    )
    assert (run_id, status, error) == (summary["run_id"], "failed", summary["error"])
    assert stats == summary
    for source in SOURCES:
        assert summary[source]["claimed"] == 0, source


def test_a_row_lock_held_by_a_bi_session_fails_the_call_after_lock_timeout(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as bi:
        stage(conn, "orders", [order(1)])
        refresh(conn)
        watermark = scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'")
        conn.execute("UPDATE globalcart.etl_settings SET value = '300 milliseconds' WHERE name = 'lock_timeout'")
        bi.execute("SELECT * FROM globalcart.fact_orders WHERE order_id = 1 FOR UPDATE")  # an open BI transaction
        stage(conn, "orders", [order(1, order_status="PAID", updated_at=ts(5)), order(2)])
        stage(conn, "order_items", [item(1, 2)])

        started = time.monotonic()
        summary = refresh(conn)
        assert time.monotonic() - started < 5

        _assert_failed_and_recorded(conn, summary, "55P03")
        assert "lock timeout" in summary["error"]["message"]
        assert summary["orders"]["backlog"] == 2 and summary["order_items"]["backlog"] == 1
        assert fetch(conn, "SELECT order_id, order_status FROM globalcart.fact_orders") == [(1, "PLACED")]
        assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 0
        assert staged_count(conn) == 3
        assert scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'") == (
            watermark
        )
        assert scalar(conn, "SHOW lock_timeout") == "0"  # the caller's own setting is given back

        bi.rollback()  # the cause is gone: the next call retries the same rows
        retry = refresh(conn)
        assert retry["status"] == "ok"
        assert (retry["orders"]["updated"], retry["orders"]["inserted"], retry["order_items"]["inserted"]) == (1, 1, 1)
        assert staged_count(conn) == 0


def test_a_lock_on_a_staging_table_fails_the_claim_after_lock_timeout(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as dba:
        conn.execute("UPDATE globalcart.etl_settings SET value = '200 ms' WHERE name = 'lock_timeout'")
        stage(conn, "orders", [order(1)])
        dba.execute("LOCK TABLE globalcart.stg_payments IN ACCESS EXCLUSIVE MODE")
        summary = refresh(conn)
        _assert_failed_and_recorded(conn, summary, "55P03")
        assert summary["orders"]["backlog"] is None  # staging could not even be counted: said, not guessed
        dba.rollback()
        assert refresh(conn)["orders"]["inserted"] == 1


def test_max_run_time_bounds_the_scheduled_command_and_the_timeout_is_recorded(dsn):
    """The plain job's command, run as pg_cron runs it (one simple-query string, here by psql)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        command = scalar(conn, "SELECT globalcart.refresh_job_command(false)")
        assert "statement_timeout" in command and "run_incremental_refresh()" in command
        stage_orders_in_bulk(conn, range(100_000))
        conn.execute("UPDATE globalcart.etl_settings SET value = '50 milliseconds' WHERE name = 'max_run_time'")

        psql = subprocess.run(["psql", dsn, "-X", "-At", "-c", command], capture_output=True, text=True, timeout=120)
        assert psql.returncode == 0, psql.stderr
        [(sqlstate, message)] = fetch(
            conn, "SELECT error ->> 'sqlstate', error ->> 'message' FROM globalcart.etl_runs WHERE status = 'failed'"
        )
        assert (sqlstate, message) == ("57014", "canceling statement due to statement timeout")
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 100_000
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 0

        conn.execute("UPDATE globalcart.etl_settings SET value = '15 minutes' WHERE name = 'max_run_time'")
        psql = subprocess.run(["psql", dsn, "-X", "-At", "-c", command], capture_output=True, text=True, timeout=120)
        assert psql.returncode == 0, psql.stderr
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 100_000


def test_a_cancelled_call_returns_failed_and_the_next_applies_everything(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage_orders_in_bulk(conn, range(200_000))
        outcome: list = []

        def run() -> None:
            with psycopg.connect(dsn, autocommit=True) as victim:
                outcome.append(victim.info.backend_pid)
                outcome.append(refresh(victim))

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 30
        while not outcome and time.monotonic() < deadline:
            time.sleep(0.01)
        while time.monotonic() < deadline and not scalar(
            conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", outcome[0]
        ):
            time.sleep(0.01)
        time.sleep(0.5)  # well into the batch
        assert scalar(conn, "SELECT pg_cancel_backend(%s)", outcome[0])
        worker.join()
        _assert_failed_and_recorded(conn, outcome[1], "57014")
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 200_000
        for table in NOTHING_CHANGED:
            assert scalar(conn, f"SELECT count(*) FROM globalcart.{table}") == 0, table
        assert refresh(conn)["orders"]["inserted"] == 200_000


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("lock_timeout", "soon"),
        ("lock_timeout", "-5 seconds"),
        ("max_rows_per_run", "many"),
        ("max_rows_per_run", "0"),
        ("max_clock_skew", "a bit"),
        ("orphan_timeout", "a day or so"),
        ("max_run_time", "forever"),
    ],
)
def test_an_unparsable_setting_fails_the_call_naming_it_and_is_recorded(conn, setting, value):
    conn.execute("UPDATE globalcart.etl_settings SET value = %s WHERE name = %s", (value, setting))
    stage(conn, "orders", [order(1)])
    summary = refresh(conn)
    _assert_failed_and_recorded(conn, summary, "GC001")
    assert setting in summary["error"]["message"] and value in summary["error"]["message"]
    assert "UPDATE globalcart.etl_settings" in summary["error"]["hint"]
    assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 1
    conn.execute("DELETE FROM globalcart.etl_settings WHERE name = %s", (setting,))  # absent: the default
    assert refresh(conn)["orders"]["inserted"] == 1


def test_a_bad_setting_is_reported_even_when_nothing_is_staged(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
    _assert_failed_and_recorded(conn, refresh(conn), "GC001")


def test_the_refresh_command_says_a_failure_in_one_line_and_exits_non_zero(dsn):

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
        stage(conn, "orders", [order(1)])
    result = run_cli("refresh", dsn=dsn)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "failed and changed nothing" in line and "lock_timeout" in line and "Traceback" not in result.stderr
