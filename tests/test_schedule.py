"""docs/contract.md §§4 and 5: the pg_cron jobs, registered where pg_cron lives, and really run by
it (the tests marked slow wait for a minute tick)."""

import time

import psycopg
import pytest
from helpers import fetch, order, run_cli, scalar, stage, wait_for
from servers import database

JOB = "globalcart-incremental-refresh"
PURGE = "globalcart-purge-cron-history"
RETENTION = "globalcart-purge-history"
BOUNDED_REFRESH = (
    "SELECT pg_catalog.set_config('statement_timeout', globalcart.job_statement_timeout(), false); "
    "SELECT globalcart.run_incremental_refresh()"
)
BOUNDED_PURGE = (
    "SELECT pg_catalog.set_config('statement_timeout', globalcart.job_statement_timeout(), false); "
    "SELECT globalcart.purge_history()"
)


def _wait_for(predicate, timeout=150, step=2):
    return wait_for(predicate, timeout, step)  # (a minute tick, and some)


@pytest.fixture
def cron(cron_db):
    with psycopg.connect(cron_db, autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        yield conn
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")


@pytest.mark.slow
def test_scheduled_job_runs_the_refresh_in_the_cron_database(cron):
    order_id = 9_000_000 + int(time.time()) % 100_000
    stage(cron, "orders", [order(order_id)])
    runs_before = scalar(cron, "SELECT count(*) FROM globalcart.etl_runs")
    job_id = scalar(cron, "SELECT globalcart.schedule_incremental_refresh()")
    assert fetch(cron, "SELECT jobname, schedule, command, database FROM cron.job ORDER BY jobname") == [
        (JOB, "* * * * *", BOUNDED_REFRESH, "gc_cron"),
        (PURGE, "17 3 * * *", "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'", "gc_cron"),
        (RETENTION, "37 3 * * *", BOUNDED_PURGE, "gc_cron"),
    ]
    # pg_cron runs them as a login member of globalcart_refresher, not as a superuser
    runs_as = fetch(cron, "SELECT DISTINCT j.username, r.rolsuper, r.rolcanlogin, "
                          "pg_has_role(r.oid, 'globalcart_refresher', 'MEMBER') FROM cron.job j "
                          "JOIN pg_roles r ON r.rolname = j.username")  # fmt: skip
    assert runs_as == [("globalcart_cron", False, True, True)]
    # re-registering keeps one job
    assert scalar(cron, "SELECT globalcart.schedule_incremental_refresh('* * * * *')") == job_id

    assert _wait_for(lambda: scalar(cron, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id = %s", order_id))
    assert scalar(cron, "SELECT count(*) FROM globalcart.etl_runs") > runs_before
    assert scalar(cron, "SELECT count(*) FROM globalcart.stg_orders WHERE order_id = %s", order_id) == 0
    status = _wait_for(
        lambda: scalar(cron, "SELECT string_agg(DISTINCT status, ',') FROM cron.job_run_details "
                             "WHERE jobid = %s AND status IN ('succeeded', 'failed')", job_id)
    )  # fmt: skip
    assert status == "succeeded"

    assert scalar(cron, "SELECT globalcart.unschedule_incremental_refresh()") is True
    assert scalar(cron, "SELECT count(*) FROM cron.job") == 0
    assert scalar(cron, "SELECT globalcart.unschedule_incremental_refresh()") is False


@pytest.mark.slow
def test_schedule_command_uses_schedule_in_database_when_pg_cron_lives_elsewhere(cron, dsn):
    warehouse = dsn.rsplit("/", 1)[1]
    result = run_cli("schedule", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "registered in 'gc_cron'" in result.stdout
    jobs = fetch(cron, "SELECT jobname, database, command FROM cron.job WHERE jobname IN (%s, %s) ORDER BY 1",
                 JOB, RETENTION)  # fmt: skip
    assert jobs == [(JOB, warehouse, BOUNDED_REFRESH), (RETENTION, warehouse, BOUNDED_PURGE)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(77)])
        assert _wait_for(lambda: scalar(conn, "SELECT count(*) FROM globalcart.fact_orders"))
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") >= 1
    result = run_cli("unschedule", dsn=dsn)
    assert result.returncode == 0 and "unscheduled" in result.stdout
    assert scalar(cron, "SELECT count(*) FROM cron.job") == 0


def test_schedule_function_outside_the_cron_database_says_what_to_run(conn):
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT globalcart.schedule_incremental_refresh()")
    assert err.value.diag.sqlstate == "GC004"
    assert "cron.schedule_in_database" in err.value.diag.message_hint


def test_invalid_cron_expression_is_one_line(cron, dsn):
    result = run_cli("schedule", "--every", "10 seconds", dsn=dsn)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "invalid schedule" in line
    assert scalar(cron, "SELECT count(*) FROM cron.job") == 0


def test_schedule_command_will_not_take_over_another_warehouses_job(cron, dsn, pg_server, template_db):
    other = database(pg_server, "gc_other_wh", template_db)
    other.init()
    try:
        assert run_cli("schedule", dsn=pg_server.dsn("gc_other_wh")).returncode == 0
        result = run_cli("schedule", dsn=dsn)
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert "refreshes database 'gc_other_wh'" in line and "unschedule it there first" in line
        unscheduled = run_cli("unschedule", dsn=dsn)  # this warehouse has none, and the other's stays
        assert (unscheduled.returncode, unscheduled.stdout.strip()) == (0, "nothing to unschedule")
        assert fetch(cron, "SELECT database FROM cron.job WHERE jobname = %s", JOB) == [("gc_other_wh",)]
    finally:
        cron.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        other.drop()


@pytest.mark.slow
def test_follow_job_applies_rows_within_seconds_under_pg_cron(cron):
    """schedule_incremental_refresh(follow => true): every minute pg_cron runs CALL refresh_for(),
    which commits call after call for 55 seconds."""
    job_id = scalar(cron, "SELECT globalcart.schedule_incremental_refresh(follow => true)")
    assert fetch(cron, "SELECT command, schedule FROM cron.job WHERE jobid = %s", job_id) == [
        ("CALL globalcart.refresh_for()", "* * * * *")
    ]
    base = 8_000_000 + int(time.time()) % 100_000
    stage(cron, "orders", [order(base)])
    assert _wait_for(lambda: scalar(cron, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id = %s", base),
                     step=0.2)  # fmt: skip
    time.sleep(2)  # the loop goes on: a row staged now is applied within about a second
    stage(cron, "orders", [order(base + 1)])
    staged = time.monotonic()
    assert _wait_for(
        lambda: scalar(cron, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id = %s", base + 1),
        timeout=10, step=0.1,
    )  # fmt: skip
    assert time.monotonic() - staged < 5
    status = _wait_for(
        lambda: scalar(cron, "SELECT string_agg(DISTINCT status, ',') FROM cron.job_run_details "
                             "WHERE jobid = %s AND status IN ('succeeded', 'failed')", job_id)
    )  # fmt: skip
    assert status == "succeeded"


def test_follow_mode_runs_every_minute(cron, dsn):
    with pytest.raises(psycopg.Error) as err:
        cron.execute("SELECT globalcart.schedule_incremental_refresh('*/5 * * * *', follow => true)")
    assert err.value.diag.sqlstate == "GC008"
    result = run_cli("schedule", "--follow", "--every", "*/5 * * * *", dsn=dsn)
    assert result.returncode == 2 and "--follow runs every minute" in result.stderr


def test_schedule_command_registers_follow_mode_where_pg_cron_lives_elsewhere(cron, dsn):
    warehouse = dsn.rsplit("/", 1)[1]
    result = run_cli("schedule", "--follow", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "follow mode" in result.stdout
    assert fetch(cron, "SELECT jobname, database, command FROM cron.job ORDER BY 1") == [
        (JOB, warehouse, "CALL globalcart.refresh_for()"),
        (PURGE, "gc_cron", "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'"),
        (RETENTION, warehouse, BOUNDED_PURGE),
    ]
    assert run_cli("unschedule", dsn=dsn).returncode == 0
    assert scalar(cron, "SELECT count(*) FROM cron.job") == 0


@pytest.mark.parametrize("run_as", ["postgres", "globalcart_refresher", "no_such_role"])
def test_jobs_never_run_as_a_superuser_a_group_or_a_missing_role(cron, run_as):
    """postgres is a superuser; globalcart_refresher cannot log in; no_such_role does not exist."""
    with pytest.raises(psycopg.Error) as err:
        cron.execute("SELECT globalcart.schedule_incremental_refresh(run_as => %s)", (run_as,))
    assert err.value.diag.sqlstate == "GC009"
    assert scalar(cron, "SELECT count(*) FROM cron.job") == 0
