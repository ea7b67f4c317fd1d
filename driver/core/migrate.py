"""``migrate``: apply db/migrations once each, in order; hand the schema to globalcart_owner
(db/privileges/ownership.sql); apply the routine files in the order of db/routines.txt, as that
role; then grant each role exactly its part (db/privileges/grants.sql). Run it as a superuser: it
creates roles, hands objects over and creates the pg_cron extension.

Migrations are forward-only and recorded in ``globalcart.schema_migrations`` with a checksum;
a recorded migration whose file has changed since is an error (add a new file instead), unless
db/migrations/comment_edits.txt lists the change as one of comments only (its code unchanged).
A migration may end with lines ``-- after routines: <SQL>``: statements that need the routines (a
summary computed by a function, say), run once, at the end of the routine files' transaction of
the migrate that applied it.
Routine files (db/functions, db/triggers, db/views) are ``CREATE OR REPLACE`` and re-applied on
every run, in one transaction, so running ``migrate`` twice changes nothing; a function of the
schema that no routine file defines any more (a removed file, an old overload) is dropped, so an
upgraded database has the routines of a fresh install. pg_cron is set up last: where the server
cannot give it to this database, the report says why in one line and the rest of the schema is
installed anyway.
On a Citus coordinator (docs/citus.md), pg_cron is created on the coordinator only,
and the owner role may log in on the workers, which the routine files reach (driver.core.cluster).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from driver.core import cluster
from driver.core.db import OWNER
from driver.core.errors import DriverError, first_line

SQL_DIR = Path(__file__).resolve().parents[2] / "db"
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
    """What migrate did: migrations applied now and before, routine files re-applied, routines dropped, pg_cron."""
    applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    routine_files: int = 0
    dropped: list[str] = field(default_factory=list)  # functions no routine file defines any more
    after_routines: list[tuple[str, str]] = field(default_factory=list)  # (migration, SQL) still to run
    cron: CronStatus | None = None


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


COMMENT_EDITS = "comment_edits.txt"


def code_checksum(text: str) -> str:
    """sha256 of a migration without its comment lines and blank lines (``-- after routines:`` lines are code)."""
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and (not line.strip().startswith("--") or line.strip().startswith(AFTER_ROUTINES))
    ]
    return _checksum("\n".join(lines))


def comment_edits(migrations: Path) -> dict[tuple[str, str], str]:
    """db/migrations/comment_edits.txt: (file, checksum before the edit) -> checksum of its code."""
    path = migrations / COMMENT_EDITS
    if not path.exists():
        return {}
    edits = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, before, code = line.split()
            edits[(name, before)] = code
    return edits


def _sql_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.sql"))


ROUTINE_FOLDERS = ("functions", "triggers", "views")


def routine_files(sql_dir: Path) -> list[Path]:
    """The routine files in their declared order (db/routines.txt); every .sql file of the routine
    folders must be listed there, once."""
    manifest = sql_dir / "routines.txt"
    listed = [line.strip() for line in manifest.read_text().splitlines() if line.strip() and not line.startswith("#")]
    present = {str(p.relative_to(sql_dir)) for folder in ROUTINE_FOLDERS for p in _sql_files(sql_dir / folder)}
    problems = []
    if unlisted := sorted(present - set(listed)):
        problems.append(f"not listed: {', '.join(unlisted)}")
    if missing := sorted(set(listed) - present):
        problems.append(f"listed but missing: {', '.join(missing)}")
    if twice := sorted({name for name in listed if listed.count(name) > 1}):
        problems.append(f"listed twice: {', '.join(twice)}")
    if problems:
        raise DriverError(
            f"{manifest.relative_to(sql_dir.parent)} does not match the routine files ({'; '.join(problems)}): "
            "list each file once, in the order it must be applied."
        )
    return [sql_dir / name for name in listed]


# The functions and procedures of the schema that this transaction did not (re)create: CREATE OR
# REPLACE rewrites the pg_proc row even when nothing changed, so its xmin is this transaction's.
LEFTOVER_ROUTINES = """
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text
  FROM pg_proc p
 WHERE p.pronamespace = 'globalcart'::regnamespace
   AND p.xmin <> pg_current_xact_id()::xid
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                               AND d.deptype = 'e')
 ORDER BY 2
"""


def _file_error(path: Path, sql_dir: Path, exc: psycopg.Error) -> DriverError:
    return DriverError(f"{path.relative_to(sql_dir.parent)} failed, nothing of it was applied: {first_line(exc)}")


def apply_migrations(conn: psycopg.Connection, sql_dir: Path, report: MigrateReport) -> None:
    """Applies the migrations of db/migrations not applied yet, in order, each recorded with its
    checksum; refuses an applied one that was edited."""
    with conn.transaction():
        conn.execute(BOOTSTRAP)
    recorded = dict(conn.execute("SELECT version, checksum FROM globalcart.schema_migrations").fetchall())
    conn.commit()
    edits = comment_edits(sql_dir / "migrations")
    for path in _sql_files(sql_dir / "migrations"):
        text = path.read_text()
        if path.name in recorded:
            comments_only = edits.get((path.name, recorded[path.name])) == code_checksum(text)
            if recorded[path.name] != _checksum(text) and comments_only:
                with conn.transaction():  # only its comments changed since it was applied
                    conn.execute("UPDATE globalcart.schema_migrations SET checksum = %s WHERE version = %s",
                                 (_checksum(text), path.name))  # fmt: skip
            elif recorded[path.name] != _checksum(text):
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
        report.after_routines += [(path.name, sql) for sql in after_routines(text)]


AFTER_ROUTINES = "-- after routines:"


def after_routines(text: str) -> list[str]:
    """The ``-- after routines: <SQL>`` lines of a migration."""
    return [
        line.strip()[len(AFTER_ROUTINES) :].strip()
        for line in text.splitlines()
        if line.strip().startswith(AFTER_ROUTINES)
    ]


def _owner_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regrole(%s) IS NOT NULL", (OWNER,)).fetchone()
    return bool(row and row[0])


def apply_privilege_file(conn: psycopg.Connection, sql_dir: Path, name: str) -> None:
    """db/privileges/<name>.sql, in a transaction of its own, as the migrating user."""
    path = sql_dir / "privileges" / f"{name}.sql"
    try:
        with conn.transaction():
            conn.execute(path.read_text())
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DriverError(
            f"{path.relative_to(sql_dir.parent)}: {first_line(exc)}. migrate creates roles and hands the schema to "
            f"{OWNER}: run it as a superuser."
        ) from None
    except psycopg.Error as exc:
        raise _file_error(path, sql_dir, exc) from None


def apply_routines(conn: psycopg.Connection, sql_dir: Path, report: MigrateReport) -> None:
    """The routine files, in one transaction, as the schema's owner role (so that what they create
    is owned by it: the SECURITY DEFINER functions then run with its rights)."""
    files = routine_files(sql_dir)
    with conn.transaction():
        if _owner_exists(conn):
            conn.execute(f"SET LOCAL ROLE {OWNER}")
        for path in files:
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise _file_error(path, sql_dir, exc) from None
        for kind, signature in conn.execute(LEFTOVER_ROUTINES).fetchall():
            try:
                with conn.transaction():
                    conn.execute(f"DROP {kind} {signature}")
            except psycopg.errors.DependentObjectsStillExist as exc:
                raise DriverError(
                    f"{signature} is no longer defined by any routine file, but other objects use it: "
                    f"{first_line(exc)} Drop or change them, then migrate again."
                ) from None
            report.dropped.append(signature)
    report.routine_files = len(files)
    for name, sql in report.after_routines:  # each in a transaction of its own, once the routines are in
        try:
            with conn.transaction():
                if _owner_exists(conn):
                    conn.execute(f"SET LOCAL ROLE {OWNER}")
                conn.execute(sql)
        except psycopg.Error as exc:
            raise DriverError(
                f"{name}: its step after the routines failed ({first_line(exc)}); fix the cause and run "
                f"`{sql}` in psql (the migration itself is applied)."
            ) from None


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
    """Creates the pg_cron extension where it can live; says what to change where it cannot."""
    status = cron_status(conn)
    if not status.ready:
        return status
    on_citus = cluster.state(conn).installed
    try:
        with conn.transaction():
            if on_citus:  # pg_cron belongs to the coordinator: Citus would create it on the workers too
                conn.execute("SET LOCAL citus.enable_ddl_propagation TO off")
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
        apply_privilege_file(conn, sql_dir, "ownership")
        cluster.prepare_workers(conn)  # on a Citus coordinator the owner applies the routines on the workers too
        apply_routines(conn, sql_dir, report)
        apply_privilege_file(conn, sql_dir, "grants")
        if with_cron:
            report.cron = setup_cron(conn)
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
            conn.commit()
    return report
