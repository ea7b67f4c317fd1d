"""Fixtures: one real PostgreSQL server (pg_cron preloaded) for the test session, started by
pytest-postgresql through driver.servers.embedded; a migrated template database; and a fresh database
cloned from it for every test.

pg_cron's scheduler lives in the session database ``gc_cron`` (cron.database_name), which is
created once and never dropped during the session: dropping the cron database stops pg_cron
1.4's scheduler for good (its worker exits and is unregistered). Per-test databases are other
databases, so
there ``migrate`` reports that pg_cron runs elsewhere, as it would on a server whose pg_cron
belongs to ``postgres``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest
from servers import database, start_test_server

from driver.core.migrate import migrate
from driver.servers.embedded import EmbeddedServer

CRON_DB = "gc_cron"
TEMPLATE_DB = "gc_template"
_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = start_test_server(cron_database=CRON_DB, durable=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: EmbeddedServer) -> str:
    """A database with the whole schema migrated, cloned by every test."""
    database(pg_server, TEMPLATE_DB).init()
    with psycopg.connect(pg_server.dsn(TEMPLATE_DB)) as conn:
        migrate(conn)
    return TEMPLATE_DB


@pytest.fixture(scope="session")
def cron_db(pg_server: EmbeddedServer) -> Iterator[str]:
    """The database pg_cron runs in, migrated with pg_cron created; shared by the tests that need it."""
    database(pg_server, CRON_DB).init()
    with psycopg.connect(pg_server.dsn(CRON_DB)) as conn:
        report = migrate(conn)
    assert report.cron is not None and report.cron.ready, report.cron
    yield pg_server.dsn(CRON_DB)


@pytest.fixture
def dsn(pg_server: EmbeddedServer, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"gc_test_{next(_db_numbers)}"
    janitor = database(pg_server, name, template_db)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


@pytest.fixture
def empty_dsn(pg_server: EmbeddedServer) -> Iterator[str]:
    """A fresh database with nothing in it (for migrate's own tests)."""
    name = f"gc_empty_{next(_db_numbers)}"
    janitor = database(pg_server, name)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection
