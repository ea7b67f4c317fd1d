"""Lint of the PL/pgSQL: every function and trigger of the schema passes plpgsql_check
(static checks of every statement against the real tables) with no error and no warning.

It runs in the database where pg_cron lives, so that the scheduling functions' statements on
cron.* are checked against the real pg_cron. The refresh's temporary work tables are created
first in the same transaction (globalcart.create_work_tables()), so that statements reading
them are checked too."""

import psycopg
import pytest
from helpers import fetch


@pytest.fixture
def checked_conn(cron_db):
    with psycopg.connect(cron_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        yield conn


def test_every_plpgsql_function_passes_plpgsql_check(checked_conn):
    conn = checked_conn
    with conn.transaction():
        conn.execute("SELECT globalcart.create_work_tables()")
        problems = fetch(
            conn,
            """
            SELECT p.oid::regprocedure::text, r.lineno, r.level, r.message, r.detail, r.hint
            FROM pg_proc p
            JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
            LEFT JOIN pg_trigger t ON t.tgfoid = p.oid AND NOT t.tgisinternal
            CROSS JOIN LATERAL plpgsql_check_function_tb(
                p.oid, coalesce(t.tgrelid, 0), performance_warnings => true, extra_warnings => true) r
            WHERE p.pronamespace = 'globalcart'::regnamespace
            ORDER BY 1, 2""",
        )
        checked = fetch(
            conn,
            """SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'globalcart'::regnamespace""",
        )
        raise psycopg.Rollback()  # leave nothing behind in the shared database
    assert checked[0][0] >= 15
    assert problems == [], "\n".join(map(str, problems))
