"""``schedule`` / ``unschedule``: the pg_cron jobs of the warehouse, wherever pg_cron lives.

When pg_cron runs in the warehouse's own database this calls
``globalcart.schedule_incremental_refresh(schedule, follow)``. When it runs in another database
(``cron.database_name``, ``postgres`` by default), it connects there and registers the same jobs
with ``cron.schedule_in_database`` so that pg_cron runs them in the warehouse: the refresh (plain
or follow mode) and the daily retention, whose commands the warehouse itself gives
(``globalcart.refresh_job_command``, ``globalcart.purge_job_command``), plus the daily purge of
``cron.job_run_details`` (which lives in pg_cron's database). Every job runs as ``run_as``
(default ``globalcart_cron``): a login member of globalcart_refresher, never a superuser
(``globalcart.check_job_user``). Jobs of these names for this warehouse that run as another user
are replaced. Scheduling for another user needs a superuser (pg_cron's rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from driver.core import db
from driver.core.errors import DriverError

JOB = "globalcart-incremental-refresh"
RETENTION_JOB = "globalcart-purge-history"
RETENTION_SCHEDULE = "37 3 * * *"
CRON_PURGE_JOB = "globalcart-purge-cron-history"
CRON_PURGE_COMMAND = "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'"
CRON_PURGE_SCHEDULE = "17 3 * * *"
EVERY_MINUTE = "* * * * *"
JOB_USER = "globalcart_cron"


@dataclass
class Scheduled:
    """The job registered: its id, and the databases of pg_cron and of the warehouse."""
    job_id: int | None
    cron_database: str
    warehouse: str


def _locate(conn: psycopg.Connection) -> tuple[str, str]:
    row = conn.execute("SELECT current_database(), current_setting('cron.database_name', true)").fetchone()
    assert row is not None
    warehouse, cron_db = row
    if cron_db is None:
        raise DriverError(
            "pg_cron is not loaded by this server: set shared_preload_libraries = 'pg_cron' and "
            f"cron.database_name = '{warehouse}' in postgresql.conf, restart PostgreSQL, run migrate, then schedule."
        )
    return warehouse, cron_db


def _cron_connection(dsn: str, cron_db: str) -> psycopg.Connection:
    conn = db.connect(make_conninfo(dsn, dbname=cron_db), autocommit=True)
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
        conn.close()
        raise DriverError(
            f"pg_cron is not created in database '{cron_db}' (cron.database_name): run CREATE EXTENSION pg_cron; there."
        )
    return conn


def _refuse_other_warehouse(cron: psycopg.Connection, cron_db: str, warehouse: str, run_as: str) -> None:
    """pg_cron job names are unique per user: the job may already refresh another warehouse."""
    row = cron.execute(
        "SELECT database FROM cron.job WHERE jobname = %s AND username = %s AND database <> %s",
        (JOB, run_as, warehouse),
    ).fetchone()
    if row:
        raise DriverError(
            f"the pg_cron job '{JOB}' of {run_as} in database '{cron_db}' refreshes database '{row[0]}', not "
            f"'{warehouse}': unschedule it there first (globalcart unschedule with that database's DSN), or pass "
            "--run-as another login member of globalcart_refresher."
        )


def schedule(dsn: str, every: str, *, follow: bool = False, run_as: str = JOB_USER) -> Scheduled:
    """Registers the pg_cron jobs (the refresh or the follow loop, retention) in pg_cron's database,
    for this warehouse."""
    if follow and every != EVERY_MINUTE:
        raise DriverError("--follow runs every minute (the loop lasts 55 seconds): leave out --every.", 2)
    with db.connect(dsn, autocommit=True) as conn:
        warehouse, cron_db = _locate(conn)
        if cron_db == warehouse:
            row = conn.execute(
                "SELECT globalcart.schedule_incremental_refresh(%s, %s, %s)", (every, follow, run_as)
            ).fetchone()
            return Scheduled(row[0] if row else None, cron_db, warehouse)
        conn.execute("SELECT globalcart.check_job_user(%s)", (run_as,))
        row = conn.execute(
            "SELECT globalcart.refresh_job_command(%s), globalcart.purge_job_command()", (follow,)
        ).fetchone()
        assert row is not None
        refresh_command, retention_command = row
    with _cron_connection(dsn, cron_db) as cron:
        _refuse_other_warehouse(cron, cron_db, warehouse, run_as)
        cron.execute(
            "SELECT cron.unschedule(jobid) FROM cron.job "
            "WHERE jobname IN (%s, %s) AND database = %s AND username <> %s",
            (JOB, RETENTION_JOB, warehouse, run_as),
        )
        row = cron.execute(
            "SELECT cron.schedule_in_database(%s, %s, %s, %s, %s)", (JOB, every, refresh_command, warehouse, run_as)
        ).fetchone()
        cron.execute(
            "SELECT cron.schedule_in_database(%s, %s, %s, %s, %s)",
            (RETENTION_JOB, RETENTION_SCHEDULE, retention_command, warehouse, run_as),
        )
        cron.execute(
            "SELECT cron.schedule_in_database(%s, %s, %s, %s, %s)",
            (CRON_PURGE_JOB, CRON_PURGE_SCHEDULE, CRON_PURGE_COMMAND, cron_db, run_as),
        )
        return Scheduled(row[0] if row else None, cron_db, warehouse)


def unschedule(dsn: str) -> bool:
    """Remove the jobs; True when the refresh job existed."""
    with db.connect(dsn, autocommit=True) as conn:
        warehouse, cron_db = _locate(conn)
        if cron_db == warehouse:
            row = conn.execute("SELECT globalcart.unschedule_incremental_refresh()").fetchone()
            return bool(row and row[0])
    with _cron_connection(dsn, cron_db) as cron:
        existed = cron.execute(
            "SELECT count(*) FROM cron.job WHERE jobname = %s AND database = %s", (JOB, warehouse)
        ).fetchone()
        cron.execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE (jobname IN (%s, %s) AND database = %s) "
            "OR (jobname = %s AND NOT EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = %s AND j.database <> %s))",
            (JOB, RETENTION_JOB, warehouse, CRON_PURGE_JOB, JOB, warehouse),
        )
        return bool(existed and existed[0])
