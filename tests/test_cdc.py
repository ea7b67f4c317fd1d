"""The CDC feed (docs/cdc.md): an OLTP source (`globalcart source
init`, the shop's workload) and the warehouse as a real logical replication subscriber (`globalcart
cdc attach`), on a server started for this module with wal_level = logical — the source and each
warehouse two databases of it, as the README's one-server set-up (the slot made apart from the
subscription). Inserts, updates, deletes and re-inserts of every table; a burst of workload with
every fact equal to the source; the warehouse stopped with -m immediate mid-stream and restarted,
with every source change staged exactly once; a subscription disabled and enabled again; a bad
source row quarantined while the stream goes on; a change staging cannot hold; the feed's health
when it breaks; the commands and their refusals."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from helpers import fetch, refresh, rejects, run_cli, scalar, wait_for
from servers import TestServer, database, start_test_server
from test_kpi_summaries import assert_same_kpis, assert_summaries_equal_a_rebuild, expected_kpis, kpi_values

from driver.core.migrate import migrate
from driver.feeds import cdc
from driver.simulation import shop as oltp

LOGICAL = ("-c wal_level=logical -c max_replication_slots=30 -c max_wal_senders=30 "
           "-c max_logical_replication_workers=16 -c max_worker_processes=40 "
           "-c wal_retrieve_retry_interval=500ms")  # fmt: skip
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    s = start_test_server(cron_database="gc_cdc_cron", durable=False, extra_options=LOGICAL)
    try:
        yield s
    finally:
        s.stop()


@dataclass
class Feed:
    server: TestServer
    warehouse: str  # DSN
    source: str  # DSN

    def run(self, sql: str, *params) -> list[tuple]:
        """Statements in the source, one transaction."""
        with psycopg.connect(self.source) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def caught_up(self, timeout: float = 60) -> None:
        """Wait until every bronze table holds what its source table holds."""
        tables = [f"shop.{t}" for t in oltp.TABLES]
        digest = "SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {} x"

        def same() -> bool:
            with psycopg.connect(self.source) as s, psycopg.connect(self.warehouse) as w:
                return [s.execute(digest.format(t)).fetchone()[0] for t in tables] == [
                    w.execute(digest.format(t)).fetchone()[0] for t in tables]  # fmt: skip

        assert wait_for(same, timeout, 0.2), "the subscription did not catch up"


@pytest.fixture
def feed(server: TestServer) -> Iterator[Feed]:
    """A migrated warehouse and an initialised source, attached; detached and dropped after."""
    n = next(_numbers)
    warehouse, source = database(server, f"gc_wh_{n}"), database(server, f"gc_shop_{n}")
    warehouse.init()
    source.init()
    f = Feed(server, server.dsn(f"gc_wh_{n}"), server.dsn(f"gc_shop_{n}"))
    try:
        with psycopg.connect(f.warehouse) as conn:
            migrate(conn, with_cron=False)
        with psycopg.connect(f.source) as conn:
            oltp.init_source(conn)
        yield f
    finally:
        with psycopg.connect(f.warehouse, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pg_subscription WHERE subname = %s", (cdc.SUBSCRIPTION,)).fetchone()[
                0
            ]:
                cdc.detach(conn)
        warehouse.drop()
        source.drop()


def attach(f: Feed) -> None:
    result = run_cli("cdc", "attach", "--source-dsn", f.source, dsn=f.warehouse)
    assert result.returncode == 0, result.stderr


def refresh_all(f: Feed) -> None:
    with psycopg.connect(f.warehouse, autocommit=True) as conn:
        while scalar(conn, "SELECT sum(staged_rows) FROM globalcart.pipeline_health") > 0:
            summary = refresh(conn)
            assert summary["status"] == "ok", summary
            if summary["totals"]["claimed"] == summary["totals"]["deferred"]:
                break  # (only children waiting for an order that will not come: orphans later)


# what the facts must hold for the source as it is: its rows, live; a row it deleted, marked deleted
ORDERS = """
SELECT o.order_id, o.customer_id, o.order_ts, CASE WHEN o.order_status IN ('DELIVERED', 'COMPLETED')
            AND EXISTS (SELECT 1 FROM shop.returns r WHERE r.order_id = o.order_id AND r.return_status <> 'REJECTED')
       THEN 'RETURNED' ELSE o.order_status END, o.channel, o.country_code, o.currency, o.gross_amount,
       o.net_amount
  FROM shop.orders o ORDER BY 1"""
FACT_ORDERS = """SELECT order_id, customer_id, order_ts, order_status, channel, country_code, currency,
       gross_amount, net_amount FROM globalcart.fact_orders WHERE deleted_at IS NULL ORDER BY 1"""
SAME_COLUMNS = {  # source table: (fact table, columns both have)
    "customers": ("dim_customer", "customer_id, full_name, email, country_code, signup_ts, segment, updated_at"),
    "products": ("dim_product", "product_id, sku, product_name, category, list_price_usd, updated_at"),
    "order_items": ("fact_order_items",
                    "order_item_id, order_id, product_id, quantity, unit_price, line_amount, updated_at"),
    "payments": ("fact_payments",
                 "payment_id, order_id, payment_ts, payment_method, payment_status, amount, updated_at"),
    "shipments": ("fact_shipments",
                  "shipment_id, order_id, carrier, shipped_ts, promised_ts, delivered_ts, updated_at"),
    "returns": ("fact_returns",
                "return_id, order_id, order_item_id, return_ts, reason, refund_amount, return_status, updated_at"),
}  # fmt: skip


def assert_facts_equal_the_source(f: Feed, *, except_orders: set[int] = frozenset()) -> None:
    """Every live fact and dimension row is the source's row; every row the source no longer has
    is marked deleted (``except_orders``: orders quarantined, with their children)."""
    with psycopg.connect(f.source) as s, psycopg.connect(f.warehouse) as w:
        source_orders = [r for r in s.execute(ORDERS).fetchall() if r[0] not in except_orders]
        assert w.execute(FACT_ORDERS).fetchall() == source_orders
        live = {r[0] for r in source_orders}
        gone = {r[0] for r in w.execute("SELECT order_id FROM globalcart.fact_orders WHERE deleted_at IS NOT NULL")}
        assert not gone & live and gone | live >= {
            r[0] for r in w.execute("SELECT order_id FROM globalcart.fact_orders")
        }
        for table, (fact, columns) in SAME_COLUMNS.items():
            key = columns.split(", ")[0]
            want = s.execute(f"SELECT {columns} FROM shop.{table} x ORDER BY 1").fetchall()
            if "order_id" in columns:
                want = [r for r in want if r[1] not in except_orders]
            got = w.execute(f"SELECT {columns} FROM globalcart.{fact} WHERE deleted_at IS NULL ORDER BY 1").fetchall()
            assert got == want, table
            # a key the source no longer has is deleted in the warehouse, never live
            keys = {r[0] for r in want}
            deleted = {r[0] for r in w.execute(f"SELECT {key} FROM globalcart.{fact} WHERE deleted_at IS NOT NULL")}
            assert not deleted & keys, table


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    assert wait_for(check, timeout), what


# -- the feed ---------------------------------------------------------------------------------------


def test_attach_copies_the_source_and_streams_inserts_updates_deletes_and_reinserts_of_every_table(feed):
    with psycopg.connect(feed.source) as conn:
        oltp.run_workload(conn, rate=50, seconds=1, seed=1)  # rows before the attach: the initial copy
    attach(feed)
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)
    assert scalar(psycopg.connect(feed.warehouse), "SELECT count(*) FROM globalcart.fact_orders") > 20
    # every table: an insert, an update, a delete, and a key inserted again
    feed.run("""
      INSERT INTO shop.customers (customer_id, full_name, email, country_code, updated_at)
        VALUES (900001, 'Ada Lovelace', 'ada@example.org', 'GB', now()),
               (900002, 'Gone Soon', 'gone@example.org', 'US', now());
      INSERT INTO shop.products (product_id, sku, product_name, category, list_price_usd, updated_at)
        VALUES (900001, 'SKU-CDC-1', 'Difference engine', 'Electronics', 99.50, now()),
               (900002, 'SKU-CDC-2', 'Withdrawn', 'Books', 5, now());
      INSERT INTO shop.orders (order_id, customer_id, channel, country_code, currency, gross_amount, net_amount,
                               updated_at)
        VALUES (900001, 900001, 'web', 'GB', 'GBP', 199, 199, now()),
               (900002, 900001, 'web', 'GB', 'GBP', 10, 10, now());
      INSERT INTO shop.order_items (order_item_id, order_id, product_id, quantity, unit_price, line_amount, updated_at)
        VALUES (900001, 900001, 900001, 2, 99.50, 199, now()), (900002, 900002, 900001, 1, 10, 10, now());
      INSERT INTO shop.payments (payment_id, order_id, payment_method, payment_status, amount, currency, updated_at)
        VALUES (900001, 900001, 'card', 'CAPTURED', 199, 'GBP', now());
      INSERT INTO shop.shipments (shipment_id, order_id, carrier, promised_ts, updated_at)
        VALUES (900001, 900001, 'DHL', now() + interval '2 days', now());
      INSERT INTO shop.returns (return_id, order_id, order_item_id, reason, updated_at)
        VALUES (900001, 900001, 900001, 'damaged', now());
    """)
    feed.run("""
      UPDATE shop.customers SET segment = 'VIP' WHERE customer_id = 900001;
      UPDATE shop.products SET list_price_usd = 89.50 WHERE product_id = 900001;
      UPDATE shop.orders SET order_status = 'PAID' WHERE order_id = 900001;
      UPDATE shop.order_items SET quantity = 3 WHERE order_item_id = 900001;
      UPDATE shop.payments SET payment_status = 'REFUNDED' WHERE payment_id = 900001;
      UPDATE shop.shipments SET shipment_status = 'IN_TRANSIT' WHERE shipment_id = 900001;
      UPDATE shop.returns SET return_status = 'APPROVED' WHERE return_id = 900001;
    """)
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)
    # deletes: an order with its lines (cascade), a payment, a shipment, a return, a customer, a product
    feed.run("""
      DELETE FROM shop.orders WHERE order_id = 900002;
      DELETE FROM shop.returns WHERE return_id = 900001;
      DELETE FROM shop.shipments WHERE shipment_id = 900001;
      DELETE FROM shop.payments WHERE payment_id = 900001;
      DELETE FROM shop.customers WHERE customer_id = 900002;
      DELETE FROM shop.products WHERE product_id = 900002;
    """)
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)
    with psycopg.connect(feed.warehouse) as w:
        for table, key in [("fact_orders", "order_id = 900002"), ("fact_order_items", "order_item_id = 900002"),
                           ("fact_returns", "return_id = 900001"), ("fact_shipments", "shipment_id = 900001"),
                           ("fact_payments", "payment_id = 900001"), ("dim_customer", "customer_id = 900002"),
                           ("dim_product", "product_id = 900002")]:  # fmt: skip
            assert scalar(w, f"SELECT deleted_at IS NOT NULL FROM globalcart.{table} WHERE {key}") is True, table
            # audited: the version before the delete
            assert scalar(w, f"SELECT count(*) FROM globalcart.audit_{table} WHERE {key}") >= 1, table
        assert_same_kpis(kpi_values(w), expected_kpis(w), "after the deletes")
        assert_summaries_equal_a_rebuild(w, "after the deletes")
    # the same keys inserted again: back, live
    feed.run("""
      INSERT INTO shop.orders (order_id, customer_id, channel, country_code, currency, gross_amount, net_amount,
                               updated_at)
        VALUES (900002, 900001, 'mobile_app', 'GB', 'GBP', 12, 12, now());
      INSERT INTO shop.order_items (order_item_id, order_id, product_id, quantity, unit_price, line_amount, updated_at)
        VALUES (900002, 900002, 900001, 1, 12, 12, now());
      INSERT INTO shop.customers (customer_id, full_name, email, country_code, updated_at)
        VALUES (900002, 'Back Again', 'back@example.org', 'US', now());
    """)
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)
    with psycopg.connect(feed.warehouse) as w:
        assert fetch(w, "SELECT channel, deleted_at FROM globalcart.fact_orders WHERE order_id = 900002") == [
            ("mobile_app", None)]  # fmt: skip
        assert not rejects(w), rejects(w)


def test_a_burst_of_source_transactions_arrives_whole_and_the_kpis_follow(feed):
    attach(feed)
    with psycopg.connect(feed.source) as conn:
        report = oltp.run_workload(conn, rate=1000, seconds=6, seed=2)
    assert report.transactions > 2000, report.line()
    assert report.counts.get("abandoned orders deleted", 0) > 0, report.line()
    feed.caught_up(timeout=120)
    refresh_all(feed)
    assert_facts_equal_the_source(feed)
    with psycopg.connect(feed.warehouse) as w:
        assert not rejects(w), rejects(w)[:3]
        assert_same_kpis(kpi_values(w), expected_kpis(w), "after the burst")
        assert_summaries_equal_a_rebuild(w, "after the burst")


def _staged_per_table(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as w:
        return {t: scalar(w, f"SELECT count(*) FROM globalcart.stg_{t}") for t in oltp.TABLES}


def test_the_warehouse_stopped_mid_stream_and_restarted_stages_each_source_change_exactly_once():
    """Two servers: the source's goes on committing while the warehouse's is stopped with -m
    immediate in the middle of applying, and started again."""
    source_server = start_test_server(preload_cron=False, durable=False, extra_options=LOGICAL)
    warehouse_server = start_test_server(preload_cron=False, durable=False)
    try:
        f = Feed(warehouse_server, warehouse_server.dsn("postgres"), source_server.dsn("postgres"))
        with psycopg.connect(f.warehouse) as conn:
            migrate(conn, with_cron=False)
        with psycopg.connect(f.source) as conn:
            oltp.init_source(conn)
        # every row change of the source, counted on the source (a table of its own, not published)
        f.run("""
          CREATE TABLE public.changes (tbl text);
          CREATE FUNCTION public.count_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO public.changes VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
        """)
        for table in oltp.TABLES:
            f.run(f"CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE ON shop.{table} "
                  "FOR EACH ROW EXECUTE FUNCTION public.count_change()")  # fmt: skip
        attach(f)
        with psycopg.connect(f.warehouse) as w:  # (the initial copy of a table stages its rows as they are then)
            wait_until(lambda: scalar(w, "SELECT tables_syncing = 0 FROM globalcart.cdc_feed()"), "the initial copy")
        done: list[oltp.WorkloadReport] = []

        def workload() -> None:
            with psycopg.connect(f.source) as conn:
                done.append(oltp.run_workload(conn, rate=300, seconds=5, seed=3))

        producer = threading.Thread(target=workload)
        producer.start()
        wait_until(lambda: sum(_staged_per_table(f.warehouse).values()) > 200, "changes staged before the stop")
        warehouse_server.crash()  # mid-stream
        time.sleep(1)
        warehouse_server.start()
        producer.join()
        assert done and done[0].transactions > 1000, done
        f.caught_up(timeout=120)
        with psycopg.connect(f.source) as s:
            changes = dict(s.execute("SELECT tbl, count(*) FROM public.changes GROUP BY 1").fetchall())
        assert _staged_per_table(f.warehouse) == {t: changes.get(t, 0) for t in oltp.TABLES}
        refresh_all(f)
        assert_facts_equal_the_source(f)
        with psycopg.connect(f.warehouse, autocommit=True) as conn:
            cdc.detach(conn)
    finally:
        warehouse_server.stop()
        source_server.stop()


def test_a_subscription_disabled_and_enabled_again_catches_up(feed):
    attach(feed)
    with psycopg.connect(feed.warehouse, autocommit=True) as w:
        w.execute(f"ALTER SUBSCRIPTION {cdc.SUBSCRIPTION} DISABLE")
        with psycopg.connect(feed.source) as conn:
            oltp.run_workload(conn, rate=200, seconds=1, seed=5)
        wait_until(lambda: scalar(w, "SELECT worker_pid IS NULL FROM globalcart.cdc_feed()"), "the worker stopped")
        health = fetch(
            w, "SELECT DISTINCT status, feed_problem FROM globalcart.pipeline_health WHERE fed_by IS NOT NULL"
        )
        assert len(health) == 1 and health[0][0] == "failing" and "is disabled" in health[0][1], health
        w.execute("SET ROLE globalcart_reader")  # a reader sees it too (pipeline_health is the owner's read)
        assert fetch(w, "SELECT DISTINCT status, feed_problem FROM globalcart.pipeline_health "
                        "WHERE fed_by IS NOT NULL") == health  # fmt: skip
        w.execute("RESET ROLE")
        w.execute(f"ALTER SUBSCRIPTION {cdc.SUBSCRIPTION} ENABLE")
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)


def test_a_source_row_that_breaks_a_warehouse_rule_is_quarantined_and_the_stream_goes_on(feed):
    attach(feed)
    feed.run("""
      INSERT INTO shop.customers (customer_id, full_name, email, country_code, updated_at)
        VALUES (1, 'A', 'a@example.org', 'US', now());
      INSERT INTO shop.orders (order_id, customer_id, channel, country_code, currency, net_amount, updated_at)
        VALUES (1, 1, 'web', 'US', 'XXX', 5, now()), (2, 1, 'web', 'US', 'USD', 7, now());
    """)
    feed.run("UPDATE shop.orders SET order_status = 'PAID' WHERE order_id = 2")
    feed.caught_up()
    refresh_all(feed)
    with psycopg.connect(feed.warehouse) as w:
        assert [(s, r) for s, r, _ in rejects(w)] == [("orders", "unknown_currency: currency")]
    assert_facts_equal_the_source(feed, except_orders={1})
    # the source corrects it: the next version is applied
    feed.run("UPDATE shop.orders SET currency = 'USD' WHERE order_id = 1")
    feed.caught_up()
    refresh_all(feed)
    assert_facts_equal_the_source(feed)


def test_a_change_staging_cannot_hold_is_quarantined_on_its_way_in(feed):
    """A source may send anything its own column types allow: a country code of three letters in a
    wider column cannot go into staging's char(2) — rejected 'unstageable', nothing stops."""
    with psycopg.connect(feed.warehouse, autocommit=True) as w:
        w.execute("CREATE SCHEMA other; CREATE TABLE other.customers (customer_id bigint PRIMARY KEY, full_name text, "
                  "country_code text, updated_at timestamptz)")  # fmt: skip
        w.execute("SELECT globalcart.install_bronze_trigger('other.customers', 'customers')")
        w.execute("SET session_replication_role = replica")  # as in the apply worker: an ALWAYS trigger fires
        w.execute("INSERT INTO other.customers VALUES (1, 'Wide', 'USA', now()), (2, 'Fine', 'DE', now())")
        w.execute("DELETE FROM other.customers WHERE customer_id = 2")
        assert fetch(w, "SELECT customer_id, country_code, deleted FROM globalcart.stg_customers ORDER BY stg_id") == [
            (2, "DE", False), (2, "DE", True)]  # fmt: skip
        assert [(s, r.split(":")[0], rec["customer_id"]) for s, r, rec in rejects(w)] == [
            ("customers", "unstageable", 1)]  # fmt: skip
        assert scalar(w, "SELECT run_id FROM globalcart.etl_rejects") is None


# -- health and the commands ------------------------------------------------------------------------


def test_a_dropped_slot_or_a_failing_apply_shows_as_failing(feed):
    attach(feed)
    with psycopg.connect(feed.warehouse, autocommit=True) as w:
        assert {r[0] for r in fetch(w, "SELECT status FROM globalcart.pipeline_health WHERE fed_by IS NOT NULL")} == {
            "ok"
        }
        assert run_cli("cdc", "status", dsn=feed.warehouse).returncode == 0
        # apply errors: a row the source will insert is in the bronze table already
        w.execute("INSERT INTO shop.customers (customer_id, full_name, email, country_code, signup_ts, segment, "
                  "updated_at) VALUES (777, 'x', 'x', 'US', now(), 'VIP', now())")  # fmt: skip
        feed.run("INSERT INTO shop.customers (customer_id, full_name, email, country_code, updated_at) "
                 "VALUES (777, 'y', 'y@example.org', 'US', now())")  # fmt: skip
        wait_until(lambda: scalar(w, "SELECT apply_errors FROM globalcart.cdc_feed()") > 0, "an apply error")
        wait_until(lambda: scalar(w, "SELECT problem FROM globalcart.cdc_feed()") is not None, "failing", timeout=30)
        health = fetch(w, "SELECT DISTINCT status FROM globalcart.pipeline_health WHERE fed_by IS NOT NULL")
        assert health == [("failing",)]
        # (the failing worker is restarted every wal_retrieve_retry_interval and runs a moment before
        # it fails again: a snapshot taken in that moment sees a worker; the feed is failing all along)
        results = []
        wait_until(lambda: results.append(run_cli("health", dsn=feed.warehouse)) or results[-1].returncode == 4,
                   "health says failing", timeout=30)  # fmt: skip
        assert "apply worker" in results[-1].stdout, results[-1].stdout
        w.execute("DELETE FROM shop.customers WHERE customer_id = 777")  # put right: it goes on
        wait_until(lambda: scalar(w, "SELECT problem FROM globalcart.cdc_feed()") is None, "healthy again")
        # the slot dropped on the source: failing, and cdc status says why
        w.execute(f"ALTER SUBSCRIPTION {cdc.SUBSCRIPTION} DISABLE")
        slot = scalar(w, "SELECT subslotname FROM pg_subscription WHERE subname = %s", cdc.SUBSCRIPTION)
        wait_until(lambda: not feed.run("SELECT active FROM pg_replication_slots WHERE slot_name = %s", slot)[0][0],
                   "the slot released")  # fmt: skip
        feed.run("SELECT pg_drop_replication_slot(%s)", slot)
        w.execute(f"ALTER SUBSCRIPTION {cdc.SUBSCRIPTION} ENABLE")
        wait_until(lambda: scalar(w, "SELECT problem FROM globalcart.cdc_feed()") is not None, "failing", timeout=30)
        status = run_cli("cdc", "status", dsn=feed.warehouse)
        assert status.returncode == 4 and f"no replication slot {slot}" in status.stdout, status.stdout


def test_a_source_that_cannot_be_reached_shows_as_failing(server):
    """The source on a server of its own, stopped."""
    source_server = start_test_server(preload_cron=False, durable=False, extra_options=LOGICAL)
    name = f"gc_wh_{next(_numbers)}"
    warehouse = database(server, name)
    warehouse.init()
    try:
        with psycopg.connect(source_server.dsn("postgres")) as conn:
            oltp.init_source(conn)
        with psycopg.connect(server.dsn(name)) as conn:
            migrate(conn, with_cron=False)
        assert (
            run_cli("cdc", "attach", "--source-dsn", source_server.dsn("postgres"), dsn=server.dsn(name)).returncode
            == 0
        )
        with psycopg.connect(server.dsn(name), autocommit=True) as w:
            running = "SELECT problem IS NULL AND worker_pid IS NOT NULL FROM globalcart.cdc_feed()"
            wait_until(lambda: scalar(w, running), "the feed running")
            source_server.crash()
            wait_until(
                lambda: scalar(w, "SELECT problem FROM globalcart.cdc_feed()") is not None, "failing", timeout=30
            )
            status = run_cli("cdc", "status", dsn=server.dsn(name))
            assert status.returncode == 4 and "the source cannot be reached" in status.stdout, status.stdout
            # detach still removes the subscription, and says what is left on the source
            result = run_cli("cdc", "detach", dsn=server.dsn(name))
            assert result.returncode == 1 and "pg_drop_replication_slot" in result.stderr, result.stderr
            assert scalar(w, "SELECT count(*) FROM pg_subscription") == 0
        source_server.start()  # (its slot is left: a server stopped this way is not stopped again)
    finally:
        warehouse.drop()
        source_server.stop()


def test_status_and_detach_remove_everything_and_attach_refuses_what_it_cannot_do(feed):
    assert run_cli("cdc", "status", dsn=feed.warehouse).returncode == 4  # not attached
    attach(feed)
    again = run_cli("cdc", "attach", "--source-dsn", feed.source, dsn=feed.warehouse)
    assert again.returncode == 1 and "attached already" in again.stderr
    # migrate regenerates the staging triggers (the owner's, as the bronze tables are), enabled ALWAYS
    assert run_cli("migrate", "--no-cron", dsn=feed.warehouse).returncode == 0
    with psycopg.connect(feed.warehouse) as w:
        assert fetch(w, "SELECT DISTINCT t.tgenabled, pg_get_userbyid(p.proowner), pg_get_userbyid(c.relowner) "
                        "FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c ON c.oid = t.tgrelid "
                        "WHERE t.tgname = 'to_staging'") == [("A", "globalcart_owner", "globalcart_owner")]  # fmt: skip
    feed.run(
        "INSERT INTO shop.customers (full_name, email, country_code, updated_at) VALUES ('M', 'm@x.org', 'DE', now())"
    )
    feed.caught_up()
    status = run_cli("cdc", "status", "--json", dsn=feed.warehouse)
    assert status.returncode == 0 and '"slot_active": true' in status.stdout, status.stdout
    with psycopg.connect(feed.warehouse) as w:
        slot = scalar(w, "SELECT subslotname FROM pg_subscription WHERE subname = %s", cdc.SUBSCRIPTION)
    result = run_cli("cdc", "detach", dsn=feed.warehouse)
    assert result.returncode == 0 and "slot" in result.stdout, result.stderr
    assert feed.run("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", slot) == [(0,)]
    with psycopg.connect(feed.warehouse) as w:
        assert scalar(w, "SELECT to_regclass('shop.orders') IS NULL AND to_regnamespace('shop') IS NULL") is True
        assert scalar(w, "SELECT count(*) FROM globalcart.etl_cdc_tables") == 0
    # refusals, one line each, nothing changed
    feed.run("DROP PUBLICATION globalcart_cdc")
    no_pub = run_cli("cdc", "attach", "--source-dsn", feed.source, dsn=feed.warehouse)
    assert no_pub.returncode == 1 and "no publication globalcart_cdc" in no_pub.stderr
    feed.run("CREATE ROLE gc_cdc_nobody LOGIN")
    try:
        nobody = run_cli("cdc", "attach", "--source-dsn", feed.source,
                         dsn=feed.warehouse.replace("postgres@", "gc_cdc_nobody@"))  # fmt: skip
        assert nobody.returncode == 1 and "needs a superuser" in nobody.stderr, nobody.stderr
    finally:
        feed.run("DROP ROLE gc_cdc_nobody")
    unreachable = run_cli("cdc", "attach", "--source-dsn", "postgresql://x@127.0.0.1:1/shop", dsn=feed.warehouse)
    assert unreachable.returncode == 1 and "cannot connect to the source" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_source_init_refuses_a_server_without_logical_wal_and_simulate_needs_the_schema(pg_server):
    """The session's server runs with wal_level = replica."""
    name = f"gc_shop_{next(_numbers)}"
    source = database(pg_server, name)
    source.init()
    try:
        simulate = run_cli("source", "simulate", "--for", "1s", dsn=pg_server.dsn(name))
        assert simulate.returncode == 1 and "source init" in simulate.stderr
        result = run_cli("source", "init", dsn=pg_server.dsn(name))
        assert result.returncode == 3 and "wal_level = logical" in result.stderr, result.stderr
        with psycopg.connect(pg_server.dsn(name)) as conn:  # the schema is there all the same
            assert scalar(conn, "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'globalcart_cdc'") == 7
        assert run_cli("source", "simulate", "--for", "nonsense", dsn=pg_server.dsn(name)).returncode == 2
    finally:
        source.drop()


def test_bench_cdc_prints_the_freshness_of_the_feed():
    """(Its own server; a few seconds of workload.)"""
    result = run_cli("bench", "--cdc", "--freshness-seconds", "4", "--cdc-warmup", "1", "--cdc-rate", "10",
                     timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = {line.split("  ")[0].strip(): line.split()[-2] for line in result.stdout.splitlines()
               if line.startswith(("p50", "p95", "max"))}  # fmt: skip
    assert set(figures) == {"p50", "p95 (goal <= 3 s)", "max"}, result.stdout
    assert 0 < float(figures["p50"]) <= float(figures["max"]), figures  # measured: a latency, not a label
    unseen = next(line for line in result.stdout.splitlines() if line.startswith("versions not visible"))
    assert unseen.split()[-1] == "0", result.stdout


def test_source_init_can_start_the_shops_keys_apart_from_other_producers(feed):
    result = run_cli("source", "init", "--id-start", "1000000000", dsn=feed.source)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(feed.source) as conn:
        oltp.run_workload(conn, rate=20, seconds=0.5, seed=9)
    assert feed.run("SELECT min(order_id) >= 1000000000, min(customer_id) >= 1000000000 FROM shop.orders") == [
        (True, True)]  # fmt: skip
