"""The driver tells errors apart by psycopg's classes and SQLSTATEs, never by message text:
a cancelled statement or a lock timeout is a failed command, not a lost connection."""

import psycopg
import pytest
from helpers import run_cli

from driver.core.errors import connection_lost, describe_connect_error, describe_sql_error
from driver.servers.embedded import free_port


def _error_of(conn: psycopg.Connection, sql: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as err:
        conn.execute(sql)
    return err.value


def test_a_timeout_is_a_failed_command_with_its_sqlstate_not_a_lost_connection(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cancelled = _error_of(conn, "SET statement_timeout = 50; SELECT pg_sleep(2)")
        assert isinstance(cancelled, psycopg.OperationalError)  # a subclass of it, in psycopg 3
        assert not connection_lost(cancelled)
        assert str(describe_sql_error(cancelled)).startswith("database error 57014: canceling statement")
        conn.execute("RESET statement_timeout")
        with psycopg.connect(dsn) as other:
            other.execute("LOCK TABLE globalcart.etl_settings")
            locked = _error_of(conn, "SET lock_timeout = 50; SELECT * FROM globalcart.etl_settings")
        assert isinstance(locked, psycopg.errors.LockNotAvailable) and not connection_lost(locked)


def test_a_terminated_session_is_a_lost_connection(dsn):
    with psycopg.connect(dsn, autocommit=True) as victim, psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        gone = _error_of(victim, "SELECT 1")
    assert connection_lost(gone)


def test_connection_failures_by_class():
    with pytest.raises(psycopg.ProgrammingError) as bad:
        psycopg.connect("postgresql://u@localhost/db?no_such_option=1")
    assert str(describe_connect_error(bad.value, "x")).startswith("invalid connection string")
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://u@127.0.0.1:{free_port()}/db", connect_timeout=3)
    assert "Is PostgreSQL running there" in str(describe_connect_error(refused.value, "127.0.0.1"))


def test_the_command_line_reports_a_cancelled_statement_as_a_database_error(dsn):
    """A lock held on staging while `health` reads it: the command fails with the lock timeout's
    SQLSTATE in one line, not with "lost the database connection"."""
    with psycopg.connect(dsn) as other:
        other.execute("LOCK TABLE globalcart.stg_orders")
        result = run_cli("health", dsn=dsn, env={"PGOPTIONS": "-c lock_timeout=100"})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("globalcart: database error 55P03") and "lost" not in line
