"""Test servers: real PostgreSQL servers started by pytest-postgresql's executor from the installed
server binaries, on the files and options ``driver.servers.embedded.prepare_server`` lays out (pg_cron
preloaded where asked; as root, run as the ``postgres`` user through a pg_ctl wrapper). Their
``crash()`` and ``start()`` (pg_ctl on the same data directory) serve the crash tests."""

from __future__ import annotations

from typing import Any

from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from driver.core.cluster import NODE_OPTIONS, create_cluster_database
from driver.servers.embedded import EmbeddedServer, EmbeddedServerError, prepare_server


class TestServer(EmbeddedServer):
    """An EmbeddedServer that pytest-postgresql's executor initialised and started."""

    __test__ = False  # (not a test class, for all its name, where a test module imports it)
    executor: PostgreSQLExecutor

    def stop(self) -> None:
        try:
            self.executor.stop()
        finally:
            self.remove_files()


def database(server: EmbeddedServer, dbname: str, template: str | None = None) -> DatabaseJanitor:
    """pytest-postgresql's janitor of one database of a test server (``init()`` creates it, from
    ``template`` when given; ``drop()`` drops it)."""
    return DatabaseJanitor(user=server.user, host=server.host, port=server.port, dbname=dbname,
                           template_dbname=template)  # fmt: skip


def start_test_server(**options: Any) -> TestServer:
    """A throwaway server for tests; ``options`` as for ``driver.servers.embedded.prepare_server``."""
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


# ---------------------------------------------------------------------------------------------
# A Citus cluster: a coordinator (Citus and pg_cron preloaded) and workers (Citus only: pg_cron
# belongs to the coordinator), each a test server on 127.0.0.1. Citus keeps its metadata per
# database, so each database of the cluster is created on every node (``create_database``).
# ---------------------------------------------------------------------------------------------

CITUS_INSTALL = "GLOBALCART_CITUS_SOURCE=<Citus source folder> bash .ci/setup.sh (as root: it builds Citus)"


def citus_installed() -> bool:
    """Is Citus built for the installed server (its library in the server's lib folder)?"""
    from driver.servers.embedded import find_pg_bin

    return (find_pg_bin().parent / "lib" / "citus.so").is_file()


class CitusCluster:
    def __init__(self, coordinator: TestServer, workers: list[TestServer]):
        self.coordinator = coordinator
        self.workers = workers

    @property
    def nodes(self) -> list[TestServer]:
        return [self.coordinator, *self.workers]

    def dsn(self, dbname: str) -> str:
        return self.coordinator.dsn(dbname)

    def create_database(self, name: str, *, add_workers: bool = True) -> str:
        """``name`` on every node (driver.core.cluster.create_cluster_database); the coordinator's DSN."""
        return create_cluster_database(self.coordinator, self.workers, name, add_workers=add_workers)

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # noqa: S110 - stop the others whatever happens to one
                pass


def start_citus_cluster(*, workers: int = 2, cron_database: str = "postgres") -> CitusCluster:
    started: list[TestServer] = []
    coordinator_options = f"-c shared_preload_libraries=citus,pg_cron {NODE_OPTIONS}"
    worker_options = f"-c shared_preload_libraries=citus {NODE_OPTIONS}"
    try:
        started.append(start_test_server(cron_database=cron_database, durable=False, extra_options=coordinator_options))
        for _ in range(workers):
            started.append(start_test_server(preload_cron=False, durable=False, extra_options=worker_options))
    except BaseException:
        for server in started:
            server.stop()
        raise
    return CitusCluster(started[0], started[1:])
