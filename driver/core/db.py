"""Connecting to the warehouse database: one place that resolves the DSN and explains failures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg

from driver.core import output
from driver.core.errors import DriverError, describe_connect_error

# The role that owns the schema (migration 0004): migrate applies the routine files as it, and the
# refresh runs with its rights; nobody logs in as it (on Citus: only on the workers, driver.core.cluster).
OWNER = "globalcart_owner"

APPLICATION_NAME = "globalcart-driver"


def resolve_dsn(dsn: str | None) -> str:
    """``--dsn`` when given, else ``DATABASE_URL``; neither is a usage error."""
    resolved = dsn or os.environ.get("DATABASE_URL")
    if not resolved:
        raise DriverError("no database given: pass --dsn postgresql://user@host:port/dbname or set DATABASE_URL.", 2)
    return resolved


def describe_target(dsn: str) -> str:
    """host:port/dbname of a DSN, without the password, for messages."""
    try:
        parts = urlsplit(dsn)
        if parts.scheme.startswith("postgres"):
            host = parts.hostname or "localhost"
            port = parts.port or 5432
            return f"{host}:{port}{parts.path or '/'}"
    except ValueError:
        pass
    return "the database"


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection:
    """Open a connection or raise a DriverError that says what to do."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, application_name=APPLICATION_NAME)
    except psycopg.Error as exc:
        raise describe_connect_error(exc, describe_target(dsn)) from None


def is_superuser(conn: psycopg.Connection) -> bool:
    """Whether the connection's user is a superuser (migrate, cdc attach and detach need one)."""
    return bool(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0])


def run_refresh(conn: psycopg.Connection) -> dict:
    """One ``globalcart.run_incremental_refresh()``, committed; its summary. A failed call (the
    function returns it rather than raising) becomes a DriverError."""
    row = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()
    conn.commit()
    assert row is not None
    summary = row[0]
    if summary["status"] == "failed":
        raise output.refresh_failure(summary)
    return summary


@dataclass(frozen=True)
class Source:
    """A row of globalcart.etl_sources: one source of the refresh."""

    name: str
    staging_table: str
    fact_table: str
    key_column: str
    primary_key: tuple[str, ...]
    waits_for_order: bool


def sources(conn: psycopg.Connection) -> list[Source]:
    """The sources of the warehouse, in the order the refresh applies them (its registry)."""
    rows = conn.execute(
        "SELECT source_name, staging_table, fact_table, key_column, primary_key, waits_for_order "
        "FROM globalcart.etl_sources ORDER BY apply_order"
    ).fetchall()
    return [Source(name, staging, fact, key, tuple(pk), waits) for name, staging, fact, key, pk, waits in rows]


def require_schema(conn: psycopg.Connection, newest: str = "globalcart.pipeline_health") -> None:
    """The warehouse must be installed, and migrated at least up to the object ``newest``: a
    relation, or a routine given with its argument types (``globalcart.revert_run(bigint)``)."""
    lookup = "to_regprocedure" if "(" in newest else "to_regclass"
    installed, current = conn.execute(
        f"SELECT to_regprocedure('globalcart.run_incremental_refresh()') IS NOT NULL, {lookup}(%s) IS NOT NULL",
        (newest,),
    ).fetchone()
    conn.commit()
    if not installed:
        raise DriverError("the warehouse is not installed in this database: run `python -m driver migrate` first.")
    if not current:
        raise DriverError("the warehouse schema is older than this driver: run `python -m driver migrate`.")
