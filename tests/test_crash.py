"""Crash safety (docs/contract.md §2.1 and 5.1): the refresh backend killed with SIGKILL mid-run (the
postmaster restarts every backend), and the server stopped with -m immediate mid-run (a power
cut): nothing is applied twice or lost, and the next call applies everything. On a server of
their own, since both take the whole server down."""

import os
import signal
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from helpers import fetch, item, order, refresh, scalar, stage, stage_orders_in_bulk, ts
from servers import start_test_server
from test_kpi_summaries import assert_summaries_equal_a_rebuild

from driver.core.migrate import migrate
from driver.servers.embedded import EmbeddedServer

pytestmark = pytest.mark.slow

ORDERS = 100_000


@pytest.fixture(scope="module")
def crash_server():
    server = start_test_server(preload_cron=False)
    try:
        yield server
    finally:
        server.stop()


def _connect_when_up(dsn: str, timeout: float = 60) -> psycopg.Connection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _prepare(server: EmbeddedServer, name: str) -> str:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = server.dsn(name)
    with psycopg.connect(dsn) as conn:
        migrate(conn, with_cron=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(1)])  # a committed run before the crash, which must survive it
        stage(conn, "order_items", [item(1, 1)])
        refresh(conn)
        stage_orders_in_bulk(conn, range(2, ORDERS + 2))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY globalcart.stg_order_items (order_item_id, order_id, product_id, quantity, unit_price, "
                "discount_amount, line_amount, updated_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(2, ORDERS + 2):
                copy.write_row((i, i, 1, 1, 10, 0, 10, ts(0)))
    return dsn


def _crash_mid_refresh(dsn: str, crash: Callable[[int], None]) -> None:
    started: list = []
    outcome: list = []

    def run() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as victim:
                started.append(victim.info.backend_pid)
                outcome.append(refresh(victim))
        except psycopg.OperationalError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline and not scalar(
            watcher,
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = 'globalcart.fact_order_items'::regclass",
            started[0],
        ):
            time.sleep(0.01)  # wait until it is writing the facts: well into the run
    crash(started[0])
    worker.join()
    assert isinstance(outcome[0], psycopg.OperationalError), "the refresh finished before the crash"


def _assert_nothing_applied_twice_or_lost(dsn: str) -> None:
    with _connect_when_up(dsn) as conn:
        assert fetch(conn, "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM globalcart.etl_runs") == [
            (1, 1)
        ]  # the killed run left no row, the committed one is still there
        assert fetch(conn, "SELECT order_id FROM globalcart.fact_orders") == [(1,)]
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == ORDERS
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_order_items") == ORDERS
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_rejects") == 0
        # the batch of new orders (ids above every stored one: the bulk path) left nothing in the
        # order directory and KPI state either
        assert fetch(conn, "SELECT order_id, units FROM globalcart.kpi_order_state") == [(1, 2)]

        summary = refresh(conn)
        assert (summary["orders"]["inserted"], summary["order_items"]["inserted"]) == (ORDERS, ORDERS)
        assert summary["totals"]["rejected"] == summary["totals"]["deferred"] == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == ORDERS + 1
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_order_items") == ORDERS + 1
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 0
        assert refresh(conn)["run_id"] is None  # nothing left, nothing applied twice
        assert scalar(conn, "SELECT count(*) FROM globalcart.kpi_order_state") == ORDERS + 1
        assert_summaries_equal_a_rebuild(conn, "after the crash and the next call")


def test_refresh_backend_killed_with_sigkill(crash_server):
    dsn = _prepare(crash_server, "crash_kill")
    _crash_mid_refresh(dsn, lambda pid: os.kill(pid, signal.SIGKILL))
    _assert_nothing_applied_twice_or_lost(dsn)


def test_server_stopped_immediately_mid_refresh(crash_server):
    dsn = _prepare(crash_server, "crash_stop")

    def power_cut(_pid: int) -> None:
        crash_server.crash()
        crash_server.start()

    _crash_mid_refresh(dsn, power_cut)
    _assert_nothing_applied_twice_or_lost(dsn)
