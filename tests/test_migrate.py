"""``migrate``: applies once, re-applies routines, is idempotent, and sets up pg_cron or says why not."""

import hashlib
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, fetch, order, refresh, run_cli, scalar, stage
from servers import database, start_test_server

from driver.core.errors import DriverError
from driver.core.migrate import (
    BOOTSTRAP,
    ROUTINE_FOLDERS,
    SQL_DIR,
    code_checksum,
    comment_edits,
    migrate,
    routine_files,
)


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
        "constraints": fetch(
            conn,
            """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                                  WHERE connamespace = 'globalcart'::regnamespace ORDER BY 1, 2""",
        ),
        "indexes": fetch(
            conn,
            """SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c
                              ON c.oid = i.indexrelid WHERE c.relnamespace = 'globalcart'::regnamespace ORDER BY 1""",
        ),
        "reference": fetch(
            conn,
            """SELECT (SELECT count(*) FROM globalcart.dim_currency),
                                           (SELECT count(*) FROM globalcart.dim_date),
                                           (SELECT count(*) FROM globalcart.etl_settings),
                                           (SELECT count(*) FROM globalcart.etl_watermarks)""",
        ),
    }


def _comments(conn):
    return fetch(
        conn,
        """SELECT c.relname, a.attname, d.description FROM pg_description d
           JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
           WHERE c.relnamespace = 'globalcart'::regnamespace ORDER BY 1, 2""",
    )


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
    """db/ (migrations, privileges, routine folders, routines.txt) copied under tmp_path, to be edited."""
    sql_dir = tmp_path / "db"
    for sub in ("migrations", "privileges", *ROUTINE_FOLDERS):
        (sql_dir / sub).mkdir(parents=True)
        for f in [*(SQL_DIR / sub).glob("*.sql"), *(SQL_DIR / sub).glob("*.txt")]:  # (comment_edits.txt)
            (sql_dir / sub / f.name).write_text(f.read_text())
    (sql_dir / "routines.txt").write_text((SQL_DIR / "routines.txt").read_text())
    return sql_dir


def _add_routine(sql_dir: Path, name: str, text: str) -> None:
    (sql_dir / "functions" / f"{name}.sql").write_text(text)
    with (sql_dir / "routines.txt").open("a") as manifest:
        manifest.write(f"functions/{name}.sql\n")


def _remove_routine(sql_dir: Path, name: str) -> None:
    (sql_dir / "functions" / f"{name}.sql").unlink()
    manifest = sql_dir / "routines.txt"
    manifest.write_text(manifest.read_text().replace(f"functions/{name}.sql\n", ""))


PROBE = "CREATE OR REPLACE FUNCTION globalcart.probe() RETURNS int LANGUAGE sql SET search_path = pg_catalog RETURN {};"


def test_migrate_reapplies_changed_functions(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    _add_routine(sql_dir, "probe", PROBE.format(1))
    with psycopg.connect(dsn) as conn:
        migrate(conn, sql_dir)
        assert scalar(conn, "SELECT globalcart.probe()") == 1
        (sql_dir / "functions" / "probe.sql").write_text(PROBE.format(2))
        migrate(conn, sql_dir)
        assert scalar(conn, "SELECT globalcart.probe()") == 2


def test_routine_files_load_in_the_declared_order_and_every_file_is_listed(dsn, tmp_path):
    listed = [p.relative_to(SQL_DIR).as_posix() for p in routine_files(SQL_DIR)]
    assert listed.index("functions/order_status_rank.sql") < listed.index(
        "functions/order_status_transition_allowed.sql"
    )
    assert listed.index("functions/install_audit_trigger.sql") < listed.index("triggers/audit.sql")
    assert listed[-1] == "views/pipeline_health.sql"

    sql_dir = _copy_of_the_sql(tmp_path)
    (sql_dir / "functions" / "stray.sql").write_text(PROBE.format(3))
    with psycopg.connect(dsn) as conn, pytest.raises(DriverError, match=r"not listed: functions/stray\.sql"):
        migrate(conn, sql_dir)


def test_migrate_drops_a_function_whose_file_was_removed_and_an_old_overload(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    _add_routine(sql_dir, "probe", PROBE.format(1))
    with psycopg.connect(dsn) as conn:
        migrate(conn, sql_dir)
        conn.execute("CREATE FUNCTION globalcart.apply_orders(bigint) RETURNS jsonb LANGUAGE sql RETURN '{}'::jsonb")
        conn.commit()
        _remove_routine(sql_dir, "probe")
        report = migrate(conn, sql_dir)
        assert report.dropped == ["globalcart.apply_orders(bigint)", "globalcart.probe()"]
        assert fetch(conn, "SELECT proname FROM pg_proc WHERE pronamespace = 'globalcart'::regnamespace "
                           "AND proname IN ('probe', 'apply_orders')") == [("apply_orders",)]  # fmt: skip


def test_a_function_still_in_use_is_not_dropped_silently(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    _add_routine(sql_dir, "probe", PROBE.format(1))
    with psycopg.connect(dsn) as conn:
        migrate(conn, sql_dir)
        conn.execute("CREATE VIEW public.uses_probe AS SELECT globalcart.probe() AS p")
        conn.commit()
        _remove_routine(sql_dir, "probe")
        with pytest.raises(DriverError, match=r"globalcart.probe\(\) is no longer defined by any routine file"):
            migrate(conn, sql_dir)
        assert scalar(conn, "SELECT globalcart.probe()") == 1  # nothing of that migrate was applied


FIRST_RELEASE = "7e4a0f0"  # main before the unattended-running issue: 0001 and the functions of its day


def _old_sql(tmp_path: Path) -> Path | None:
    """db/ as FIRST_RELEASE had it, from git (None where the checkout has no history)."""
    has_commit = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{FIRST_RELEASE}^{{commit}}"],
                                capture_output=True, check=False).returncode == 0  # fmt: skip
    if not has_commit:
        return None
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", FIRST_RELEASE, "db"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    return tmp_path / "db"


def _install_old(conn: psycopg.Connection, old_sql: Path | None) -> None:
    """An older install: FIRST_RELEASE's schema and routines (the old migrate: migrations, then every
    function and trigger file alphabetically); without git history, today's with the leftovers an
    older release leaves (a removed file's function, an old overload)."""
    if old_sql is None:
        migrate(conn, with_cron=False)
        conn.execute("CREATE FUNCTION globalcart.apply_customers(bigint) RETURNS jsonb LANGUAGE sql RETURN '{}'::jsonb")
        conn.execute("CREATE FUNCTION globalcart.gone() RETURNS int LANGUAGE sql RETURN 1")
        conn.commit()
        return
    conn.execute(BOOTSTRAP)
    for path in sorted((old_sql / "migrations").glob("*.sql")):
        conn.execute(path.read_text())
        conn.execute("INSERT INTO globalcart.schema_migrations (version, checksum) VALUES (%s, %s)",
                     (path.name, hashlib.sha256(path.read_text().encode()).hexdigest()))  # fmt: skip
    for folder in ("functions", "triggers"):
        for path in sorted((old_sql / folder).glob("*.sql")):
            conn.execute(path.read_text())
    conn.commit()


def test_an_upgraded_database_has_exactly_what_a_fresh_install_has(pg_server, tmp_path):

    catalogs = {}
    for name in ("gc_fresh", "gc_upgraded"):
        janitor = database(pg_server, name)
        janitor.init()
        try:
            with psycopg.connect(pg_server.dsn(name)) as conn:
                if name == "gc_upgraded":
                    _install_old(conn, _old_sql(tmp_path))
                    stage(conn, "orders", [order(1)])  # staged before the upgrade, applied after it
                    conn.commit()
                report = migrate(conn, with_cron=False)
                assert name == "gc_fresh" or report.dropped, "an older install leaves functions to drop"
                conn.commit()
                catalogs[name] = _catalog(conn) | {"comments": _comments(conn)}
                conn.commit()
                if name == "gc_upgraded":
                    conn.autocommit = True
                    assert refresh(conn)["orders"]["inserted"] == 1  # the upgraded warehouse works
        finally:
            janitor.drop()
    fresh, upgraded = catalogs["gc_fresh"], catalogs["gc_upgraded"]
    for part in fresh:
        if part != "migrations":  # the checksums of 0001 are equal; the recorded times are not compared
            assert upgraded[part] == fresh[part], part


def test_a_migration_changed_after_it_was_applied_is_refused(dsn, tmp_path):
    sql_dir = _copy_of_the_sql(tmp_path)
    first = sorted((sql_dir / "migrations").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with psycopg.connect(dsn) as conn, pytest.raises(DriverError, match="forward-only"):
        migrate(conn, sql_dir)


def test_every_listed_comment_edit_left_the_code_of_its_migration_as_it_was():
    edits = comment_edits(SQL_DIR / "migrations")
    assert edits, "db/migrations/comment_edits.txt lists the edits of the comments that cite docs/"
    for (name, _before), code in edits.items():
        assert code_checksum((SQL_DIR / "migrations" / name).read_text()) == code, name


def test_a_database_migrated_before_a_listed_comment_edit_is_accepted_and_recorded_anew(dsn, tmp_path):
    (name, before), _code = next(iter(comment_edits(SQL_DIR / "migrations").items()))
    text = (SQL_DIR / "migrations" / name).read_text()
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE globalcart.schema_migrations SET checksum = %s WHERE version = %s", (before, name))
        conn.commit()
        migrate(conn, with_cron=False)
        conn.commit()
        assert scalar(conn, "SELECT checksum FROM globalcart.schema_migrations WHERE version = %s", name) == \
            hashlib.sha256(text.encode()).hexdigest()

        # the same recorded checksum, but the file's code changed too: refused
        conn.execute("UPDATE globalcart.schema_migrations SET checksum = %s WHERE version = %s", (before, name))
        conn.commit()
        sql_dir = _copy_of_the_sql(tmp_path)
        (sql_dir / "migrations" / name).write_text(text + "\nSELECT 1;\n")
        with pytest.raises(DriverError, match="forward-only"):
            migrate(conn, sql_dir, with_cron=False)


def test_the_catalog_comments_cite_the_documents_of_the_repository(dsn):
    with psycopg.connect(dsn) as conn:
        assert fetch(conn, "SELECT description FROM pg_description "
                           "WHERE description ~ 'CONTRACT|DESIGN|\\.\\./shared'") == []  # fmt: skip


def test_migrate_creates_pg_cron_in_the_cron_database(cron_db):
    with psycopg.connect(cron_db, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 1
    result = run_cli("migrate", dsn=cron_db)
    assert result.returncode == 0, result.stderr
    assert "pg_cron: ready in database 'gc_cron'" in result.stdout


@pytest.fixture(scope="module")
def plain_server():
    """A second server: pg_cron not preloaded, and a role that must log in with a password."""
    server = start_test_server(
        preload_cron=False, durable=False, hba_lines=("host all pwuser 127.0.0.1/32 scram-sha-256",)
    )
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
    from driver.servers.embedded import free_port

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
