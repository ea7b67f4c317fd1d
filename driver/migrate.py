"""``migrate``: apply db/migrations once each, in order, then every db/functions, db/triggers and db/views file.

Migrations are forward-only and recorded in ``globalcart.schema_migrations`` with a checksum;
a recorded migration whose file has changed since is an error (add a new file instead).
Function and trigger files are ``CREATE OR REPLACE`` and re-applied on every run, so running
``migrate`` twice changes nothing. pg_cron is set up last: where the server cannot give it to
this database, the report says why in one line and the rest of the schema is installed anyway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from driver.errors import DriverError, first_line

SQL_DIR = Path(__file__).resolve().parent.parent / "db"
MIGRATE_LOCK_KEY = 360361  # advisory lock: one migrate at a time

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS globalcart;
CREATE TABLE IF NOT EXISTS globalcart.schema_migrations (
  version    text PRIMARY KEY,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass
class CronStatus:
    """Whether pg_cron is usable in this database; ``message`` is the one line to show."""

    ready: bool
    message: str
    database: str | None = None  # where pg_cron runs (cron.database_name), when preloaded
    blocking: bool = False  # pg_cron cannot run at all on this server (not installed / not preloaded)


@dataclass
class MigrateReport:
    applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    routine_files: int = 0
    cron: CronStatus | None = None


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sql_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.sql"))


def _file_error(path: Path, sql_dir: Path, exc: psycopg.Error) -> DriverError:
    return DriverError(f"{path.relative_to(sql_dir.parent)} failed, nothing of it was applied: {first_line(exc)}")


def apply_migrations(conn: psycopg.Connection, sql_dir: Path, report: MigrateReport) -> None:
    with conn.transaction():
        conn.execute(BOOTSTRAP)
    recorded = dict(conn.execute("SELECT version, checksum FROM globalcart.schema_migrations").fetchall())
    conn.commit()
    for path in _sql_files(sql_dir / "migrations"):
        text = path.read_text()
        if path.name in recorded:
            if recorded[path.name] != _checksum(text):
                raise DriverError(
                    f"migration {path.name} was changed after it was applied; migrations are forward-only: "
                    "restore the file and put the change in a new numbered migration."
                )
            report.already_applied += 1
            continue
        try:
            with conn.transaction():
                conn.execute(text)
                conn.execute(
                    "INSERT INTO globalcart.schema_migrations (version, checksum) VALUES (%s, %s)",
                    (path.name, _checksum(text)),
                )
        except psycopg.Error as exc:
            raise _file_error(path, sql_dir, exc) from None
        report.applied.append(path.name)


def apply_routines(conn: psycopg.Connection, sql_dir: Path, report: MigrateReport) -> None:
    # views last: they are checked against the functions they call when they are created
    files = _sql_files(sql_dir / "functions") + _sql_files(sql_dir / "triggers") + _sql_files(sql_dir / "views")
    with conn.transaction():
        for path in files:
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise _file_error(path, sql_dir, exc) from None
    report.routine_files = len(files)


def cron_status(conn: psycopg.Connection) -> CronStatus:
    """Inspect the server: is pg_cron installed, preloaded, and does it belong to this database?"""
    row = conn.execute(
        """SELECT current_database(),
                  current_setting('shared_preload_libraries'),
                  current_setting('cron.database_name', true),
                  EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'),
                  current_setting('server_version_num')::int / 10000"""
    ).fetchone()
    conn.commit()
    assert row is not None
    database, preload, cron_db, available, major = row
    libraries = [lib.strip().strip('"') for lib in preload.split(",")]
    if not available:
        return CronStatus(
            False,
            f"pg_cron: not installed on the server: install the package postgresql-{major}-cron, set "
            f"shared_preload_libraries = 'pg_cron' and cron.database_name = '{database}' in postgresql.conf, "
            "restart PostgreSQL, and run migrate again (the rest of the schema is installed).",
            blocking=True,
        )
    if "pg_cron" not in libraries:
        return CronStatus(
            False,
            "pg_cron: not preloaded by the server: set shared_preload_libraries = 'pg_cron' and "
            f"cron.database_name = '{database}' in postgresql.conf, restart PostgreSQL, and run migrate again "
            "(the rest of the schema is installed).",
            blocking=True,
        )
    if cron_db != database:
        return CronStatus(
            False,
            f"pg_cron: runs in database '{cron_db}' (cron.database_name), not in '{database}': set "
            f"cron.database_name = '{database}' and restart to keep it here, or schedule the refresh from "
            f"'{cron_db}' with cron.schedule_in_database (the rest of the schema is installed).",
            database=cron_db,
        )
    return CronStatus(True, f"pg_cron: ready in database '{database}'.", database=cron_db)


def setup_cron(conn: psycopg.Connection) -> CronStatus:
    status = cron_status(conn)
    if not status.ready:
        return status
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    except psycopg.errors.InsufficientPrivilege:
        return CronStatus(
            False,
            "pg_cron: this user may not create the extension: ask a superuser to run "
            "CREATE EXTENSION pg_cron; in this database (the rest of the schema is installed).",
            database=status.database,
            blocking=True,
        )
    return status


def migrate(conn: psycopg.Connection, sql_dir: Path = SQL_DIR, *, with_cron: bool = True) -> MigrateReport:
    """Bring the database's schema up to date; safe to run again and from several sessions at once."""
    if not (sql_dir / "migrations").is_dir():
        raise DriverError(f"no SQL found at {sql_dir}: run the driver from a checkout of GlobalCart 360.")
    report = MigrateReport()
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
    conn.commit()
    try:
        apply_migrations(conn, sql_dir, report)
        apply_routines(conn, sql_dir, report)
        if with_cron:
            report.cron = setup_cron(conn)
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
            conn.commit()
    return report
