"""Test servers: real PostgreSQL servers started by pytest-postgresql's executor from the installed
server binaries, on the files and options ``driver.embedded.prepare_server`` lays out (pg_cron
preloaded where asked; as root, run as the ``postgres`` user through a pg_ctl wrapper). Their
``crash()`` and ``start()`` (pg_ctl on the same data directory) serve the crash tests."""

from __future__ import annotations

from typing import Any

from pytest_postgresql.executors import PostgreSQLExecutor

from driver.embedded import EmbeddedServer, EmbeddedServerError, prepare_server


class TestServer(EmbeddedServer):
    """An EmbeddedServer that pytest-postgresql's executor initialised and started."""

    executor: PostgreSQLExecutor

    def stop(self) -> None:
        try:
            self.executor.stop()
        finally:
            self.remove_files()


def start_test_server(**options: Any) -> TestServer:
    """A throwaway server for tests; ``options`` as for ``driver.embedded.prepare_server``."""
    plan = prepare_server(**options)
    server = TestServer(plan.host, plan.port, plan.user, plan.basedir, plan.pg_ctl, plan.options)
    server.executor = PostgreSQLExecutor(
        executable=str(server.pg_ctl),
        host=server.host,
        port=server.port,
        datadir=str(server.datadir),
        unixsocketdir=str(server.basedir),
        logfile=str(server.logfile),
        startparams="-w",
        dbname="postgres",
        postgres_options=server.options,
    )
    try:
        server.executor.start()
    except Exception as exc:  # the server log says why; point at it
        server.remove_files()
        raise EmbeddedServerError(f"the test PostgreSQL did not start ({exc}); see {server.logfile}") from exc
    return server
