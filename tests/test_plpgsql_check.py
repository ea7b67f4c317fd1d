"""Lint of the PL/pgSQL: every function and trigger of the schema passes plpgsql_check
(static checks of every statement against the real tables) with no error and no warning.

It runs in the database where pg_cron lives, so that the scheduling functions' statements on
cron.* are checked against the real pg_cron. The refresh's temporary work tables are created
first in the same transaction (globalcart.create_work_tables()), so that statements reading
them are checked too."""

import re

import psycopg
import pytest
from helpers import ROOT, fetch


def plpgsql_routines_of_the_files() -> set[str]:
    """The PL/pgSQL routines the routine files of db/routines.txt define (at the top level of a
    file: a generator's CREATE inside a format() string is indented, and counted from the catalog)."""
    names = set()
    for line in (ROOT / "db" / "routines.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text = (ROOT / "db" / line.strip()).read_text()
        for match in re.finditer(r"(?m)^CREATE OR REPLACE (?:FUNCTION|PROCEDURE) globalcart\.(\w+)\((.*?)^AS ", text,
                                 re.S):  # fmt: skip
            if re.search(r"(?m)^\s*LANGUAGE plpgsql", match.group(2)):
                names.add(match.group(1))
    return names


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
        checked = {name for (name,) in fetch(
            conn,
            """SELECT p.proname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'globalcart'::regnamespace""",
        )}  # fmt: skip
        generated = {name for (name,) in fetch(
            conn,
            """SELECT DISTINCT p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
               WHERE NOT t.tgisinternal AND left(t.tgname, 6) = 'audit_'""",
        )}  # fmt: skip
        raise psycopg.Rollback()  # leave nothing behind in the shared database
    from_files = plpgsql_routines_of_the_files()
    assert len(from_files) >= 50, from_files  # (the parse found the routines: the refresh alone has dozens)
    assert from_files <= checked, from_files - checked  # every routine of the files was checked...
    assert len(generated) >= 16 and generated <= checked  # ...and every generated audit trigger function
    assert problems == [], "\n".join(map(str, problems))
