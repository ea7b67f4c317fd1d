"""``migrate``: applies once, re-applies routines, is idempotent, and sets up pg_cron or says why not."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import fetch, order, refresh, scalar, stage

from driver.embedded import start_server
from driver.migrate import SQL_DIR, migrate

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, dsn: str | None = None, env_dsn: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if env_dsn:
        env["DATABASE_URL"] = env_dsn
    argv = [sys.executable, "-m", "driver", *args]
    if dsn:
        argv += ["--dsn", dsn]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _catalog(conn):
    """Everything migrate defines in the schema, as text."""
    return {
        "relations": fetch(
            conn,
            """SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c
                                    WHERE c.relnamespace = 'globalcart'::regnamespace ORDER BY 1""",
        ),
        "columns": fetch(
            conn,
            """SELECT table_name, column_name, data_type, is_nullable, column_default
                                  FROM information_schema.columns WHERE table_schema = 'globalcart' ORDER BY 1, 2""",
        ),
        "functions": fetch(
            conn,
            """SELECT p.oid::regprocedure::text, md5(p.prosrc) FROM pg_proc p
                                    WHERE p.pronamespace = 'globalcart'::regnamespace ORDER BY 1""",
        ),
        "triggers": fetch(
            conn,
            """SELECT tgrelid::regclass::text, tgname FROM pg_trigger
                                   WHERE NOT tgisinternal ORDER BY 1, 2""",
        ),
        "migrations": fetch(conn, "SELECT version, checksum FROM globalcart.schema_migrations ORDER BY 1"),
        "reference": fetch(
            conn,
            """SELECT (SELECT count(*) FROM globalcart.dim_currency),
                                           (SELECT count(*) FROM globalcart.dim_date),
                                           (SELECT count(*) FROM globalcart.etl_settings),
                                           (SELECT count(*) FROM globalcart.etl_watermarks)""",
        ),
    }


def test_migrate_on_an_empty_database_installs_everything(empty_dsn):
    result = run_cli("migrate", dsn=empty_dsn)
    assert result.returncode == 0, result.stderr
    assert "applied 0001_warehouse.sql" in result.stdout
    assert "pg_cron: runs in database 'gc_cron'" in result.stdout
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        migrations = [p.name for p in sorted((SQL_DIR / "migrations").glob("*.sql"))]
        assert [v for (v,) in fetch(conn, "SELECT version FROM globalcart.schema_migrations ORDER BY 1")] == migrations
        stage(conn, "orders", [order(1)])
        assert refresh(conn)["orders"]["inserted"] == 1


def test_migrate_twice_changes_nothing_and_keeps_the_data(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(1)])
        refresh(conn)
        conn.execute("UPDATE globalcart.etl_settings SET value = '2 hours' WHERE name = 'orphan_timeout'")
        before = _catalog(conn)
        watermarks = fetch(conn, "SELECT * FROM globalcart.etl_watermarks ORDER BY 1")

    result = run_cli("migrate", env_dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "0 migration(s) applied now" in result.stdout

    with psycopg.connect(dsn, autocommit=True) as conn:
        assert _catalog(conn) == before
        assert fetch(conn, "SELECT * FROM globalcart.etl_watermarks ORDER BY 1") == watermarks
        assert scalar(conn, "SELECT value FROM globalcart.etl_settings WHERE name = 'orphan_timeout'") == "2 hours"
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 1


def _copy_of_the_sql(tmp_path: Path) -> Path:
    """db/migrations, db/functions and db/triggers copied under tmp_path, to be edited."""
    sql_dir = tmp_path / "db"
    for sub in ("migrations", "functions", "triggers", "views"):
        (sql_dir / sub).mkdir(parents=True)
        for f in (SQL_DIR / sub).glob("*.sql"):
            (sql_dir / sub / f.name).write_text(f.read_text())
    return sql_dir


def test_migrate_reapplies_changed_functions(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    (sql_dir / "functions" / "zz_probe.sql").write_text(
        "CREATE OR REPLACE FUNCTION globalcart.probe() RETURNS int LANGUAGE sql SET search_path = pg_catalog RETURN 2;"
    )
    with psycopg.connect(dsn) as conn:
        migrate(conn, sql_dir)
        assert scalar(conn, "SELECT globalcart.probe()") == 2


def test_a_migration_changed_after_it_was_applied_is_refused(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    first = sorted((sql_dir / "migrations").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with psycopg.connect(dsn) as conn, pytest.raises(Exception, match="forward-only"):
        migrate(conn, sql_dir)


def test_migrate_creates_pg_cron_in_the_cron_database(cron_db):
    with psycopg.connect(cron_db, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 1
    result = run_cli("migrate", dsn=cron_db)
    assert result.returncode == 0, result.stderr
    assert "pg_cron: ready in database 'gc_cron'" in result.stdout


@pytest.fixture(scope="module")
def plain_server():
    """A second server: pg_cron not preloaded, and a role that must log in with a password."""
    server = start_server(preload_cron=False, durable=False, hba_lines=("host all pwuser 127.0.0.1/32 scram-sha-256",))
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute("CREATE ROLE pwuser LOGIN PASSWORD 'right-password'")
        conn.execute("CREATE DATABASE plain")
    try:
        yield server
    finally:
        server.stop()


def test_server_without_pg_cron_installs_the_schema_and_says_what_to_set(plain_server):
    result = run_cli("migrate", dsn=plain_server.dsn("plain"))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "shared_preload_libraries = 'pg_cron'" in lines[0] and "restart" in lines[0]
    with psycopg.connect(plain_server.dsn("plain"), autocommit=True) as conn:
        stage(conn, "orders", [order(1)])
        assert refresh(conn)["orders"]["inserted"] == 1
    assert run_cli("migrate", "--no-cron", dsn=plain_server.dsn("plain")).returncode == 0


def test_wrong_password_is_one_line_and_a_non_zero_exit(plain_server):
    dsn = f"postgresql://pwuser:wrong-password@{plain_server.host}:{plain_server.port}/plain"
    result = run_cli("migrate", dsn=dsn)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "password" in line and "DATABASE_URL" in line and "wrong-password" not in line


def test_unreachable_database_is_one_line_and_a_non_zero_exit():
    from driver.embedded import free_port

    result = run_cli("refresh", env_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("globalcart: cannot connect to 127.0.0.1:") and "Is PostgreSQL running" in line


def test_no_database_given_is_a_usage_error():
    result = run_cli("migrate")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "--dsn" in line and "DATABASE_URL" in line


def test_bad_command_line_is_a_usage_error():
    result = run_cli("migrate", "--bogus")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_refresh_command_prints_a_table(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(1), order(2, currency="XXX")])
    result = run_cli("refresh", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "orders" in result.stdout and "claimed" in result.stdout
    assert "etl_rejects WHERE run_id" in result.stdout
    json_result = run_cli("refresh", "--json", dsn=dsn)
    assert '"status": "ok"' in json_result.stdout
