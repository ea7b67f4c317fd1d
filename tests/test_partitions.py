"""Monthly partitions (migration 0006): orders by order_ts, their children by their order's
order_ts (carried on the row), funnel events by event_ts, audit tables by audited_at; created by
the refresh for the months its batch needs; a newer version in another month moves the order (and
its children), never a second row; fact_retention drops whole months and the KPI summaries follow."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from helpers import event, fetch, item, order, partition_of, payment, refresh, return_, scalar, shipment, stage
from test_kpi_summaries import assert_same_kpis, assert_summaries_equal_a_rebuild, expected_kpis, kpi_values

MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)
MAY = datetime(2026, 5, 20, 8, tzinfo=UTC)
CHILDREN = ("fact_order_items", "fact_payments", "fact_shipments", "fact_returns")


def test_the_large_tables_are_partitioned_by_month(conn):
    keys = dict(fetch(conn, """SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p
                                 JOIN pg_class c ON c.oid = p.partrelid
                                WHERE c.relnamespace = 'globalcart'::regnamespace"""))  # fmt: skip
    assert keys["fact_orders"] == "RANGE (order_ts)"
    for child in CHILDREN:
        assert keys[child] == "RANGE (order_ts)", child
    assert keys["fact_funnel_events"] == "RANGE (event_ts)"
    audits = [name for name in keys if name.startswith("audit_")]
    assert len(audits) == 10 and all(keys[a] == "RANGE (audited_at)" for a in audits)


def test_rows_for_months_without_a_partition_never_fail_a_refresh(conn):
    old, future = datetime(2019, 5, 10, tzinfo=UTC), datetime(2031, 1, 2, tzinfo=UTC)
    stage(conn, "orders", [order(1, order_ts=old), order(2, order_ts=future)])
    stage(conn, "order_items", [item(10, 1), item(20, 2)])
    stage(conn, "payments", [payment(30, 1)])
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", event_ts=datetime(2018, 2, 3, tzinfo=UTC))])
    summary = refresh(conn)
    assert summary["status"] == "ok" and summary["totals"]["rejected"] == 0, summary
    assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_p2019_05"]
    assert partition_of(conn, "fact_orders", "order_id = 2") == ["globalcart.fact_orders_p2031_01"]
    assert partition_of(conn, "fact_order_items", "order_id = 1") == ["globalcart.fact_order_items_p2019_05"]
    assert partition_of(conn, "fact_payments", "order_id = 1") == ["globalcart.fact_payments_p2019_05"]
    assert partition_of(conn, "fact_funnel_events", "true") == ["globalcart.fact_funnel_events_p2018_02"]
    # children carry their order's order_ts
    assert fetch(conn, "SELECT order_id, order_ts FROM globalcart.fact_order_items ORDER BY 1") == [
        (1, old),
        (2, future),
    ]
    # a new partition has the parent's comment rules, indexes and audit trigger
    assert scalar(conn, "SELECT obj_description('globalcart.fact_orders_p2019_05'::regclass, 'pg_class')") == (
        "Partition of fact_orders for 2019-05 (UTC)."
    )
    stage(conn, "orders", [order(1, order_ts=old, order_status="PAID", updated_at=MAY)])
    refresh(conn)
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders WHERE order_id = 1") == 1


def test_a_failed_refresh_leaves_no_partition_behind(conn):
    stage(conn, "orders", [order(1, order_ts=datetime(2017, 7, 1, tzinfo=UTC))])
    # a neighbour's trigger makes the call fail after the orders were applied
    conn.execute("""CREATE FUNCTION public.fail() RETURNS trigger LANGUAGE plpgsql AS
                    $$ BEGIN RAISE EXCEPTION 'not today'; END; $$""")  # fmt: skip
    conn.execute("CREATE TRIGGER fail BEFORE INSERT ON globalcart.kpi_order_summary EXECUTE FUNCTION public.fail()")
    conn.commit()
    failed = refresh(conn)
    conn.commit()
    assert failed["status"] == "failed" and "not today" in failed["error"]["message"], failed
    assert scalar(conn, "SELECT to_regclass('globalcart.fact_orders_p2017_07')") is None
    conn.execute("DROP TRIGGER fail ON globalcart.kpi_order_summary")
    conn.commit()
    assert refresh(conn)["status"] == "ok"
    assert scalar(conn, "SELECT to_regclass('globalcart.fact_orders_p2017_07')") is not None


def test_a_newer_version_in_another_month_moves_the_order_and_its_children(conn):
    stage(conn, "orders", [order(1, order_ts=MARCH, order_status="DELIVERED", updated_at=MARCH)])
    stage(conn, "order_items", [item(10, 1, updated_at=MARCH), item(11, 1, updated_at=MARCH)])
    stage(conn, "payments", [payment(20, 1, updated_at=MARCH)])
    stage(conn, "shipments", [shipment(30, 1, delivered_ts=MARCH, updated_at=MARCH)])
    stage(conn, "returns", [return_(40, 1, return_status="REQUESTED", updated_at=MARCH)])
    refresh(conn)
    stage(conn, "orders", [order(1, order_ts=MAY, order_status="RETURNED", updated_at=MAY)])
    summary = refresh(conn)
    assert summary["sources"]["orders"]["updated"] == 1, summary
    assert fetch(conn, "SELECT order_ts FROM globalcart.fact_orders WHERE order_id = 1") == [(MAY,)]
    assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_p2026_05"]
    for child in CHILDREN:
        assert fetch(conn, f"SELECT DISTINCT order_ts FROM globalcart.{child}") == [(MAY,)], child
        assert partition_of(conn, child, "true") == [f"globalcart.{child}_p2026_05"], child
        # the move is audited: the old version, with its old order_ts
        assert scalar(conn, f"SELECT count(*) FROM globalcart.audit_{child} WHERE order_ts = %s", MARCH) >= 1, child
    # audited: the return's derived RETURNED (first call), then the version the move replaced
    assert fetch(conn, "SELECT order_ts, order_status FROM globalcart.audit_fact_orders ORDER BY audit_id") == [
        (MARCH, "DELIVERED"), (MARCH, "RETURNED")
    ]  # fmt: skip
    # an older version with the old month afterwards is stale: still one row, unchanged
    stage(conn, "orders", [order(1, order_ts=MARCH, order_status="RETURNED", updated_at=MARCH + timedelta(days=1))])
    summary = refresh(conn)
    assert summary["sources"]["orders"]["stale"] == 1, summary
    assert fetch(conn, "SELECT order_ts FROM globalcart.fact_orders WHERE order_id = 1") == [(MAY,)]
    # a later child version goes to the order's new partition, not a second row
    stage(conn, "order_items", [item(10, 1, quantity=7, updated_at=MAY + timedelta(days=1))])
    refresh(conn)
    assert fetch(conn, "SELECT quantity, order_ts FROM globalcart.fact_order_items WHERE order_item_id = 10") == [
        (7, MAY)
    ]
    assert_summaries_equal_a_rebuild(conn, "after the move")
    assert_same_kpis(kpi_values(conn), expected_kpis(conn), "after the move")


def test_a_move_within_the_month_updates_in_place(conn):
    stage(conn, "orders", [order(1, order_ts=MARCH, updated_at=MARCH)])
    stage(conn, "order_items", [item(10, 1, updated_at=MARCH)])
    refresh(conn)
    later = MARCH + timedelta(days=5)
    stage(conn, "orders", [order(1, order_ts=later, updated_at=MARCH + timedelta(hours=1))])
    refresh(conn)
    assert fetch(conn, "SELECT order_ts FROM globalcart.fact_orders") == [(later,)]
    assert fetch(conn, "SELECT order_ts FROM globalcart.fact_order_items") == [(later,)]


def test_a_replayed_event_with_another_time_is_a_duplicate(conn):
    first = event("s1", "ADD_TO_CART", event_ts=MARCH, cart_value_usd=Decimal("10"))
    stage(conn, "funnel_events", [first])
    refresh(conn)
    stage(conn, "funnel_events", [first | {"event_ts": MAY, "updated_at": MAY}])
    summary = refresh(conn)
    assert summary["sources"]["funnel_events"]["duplicate"] == 1, summary
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_funnel_events") == 1


def test_a_one_month_query_reads_one_partition(conn):
    for month in (1, 2, 3, 4):
        stage(conn, "orders", [order(month, order_ts=datetime(2026, month, 15, tzinfo=UTC))])
        stage(conn, "order_items", [item(month * 10, month)])
    refresh(conn)
    conn.execute("ANALYZE globalcart.fact_orders")

    def scanned(sql: str) -> set[str]:
        plan = scalar(conn, f"EXPLAIN (FORMAT JSON) {sql}")
        plan = plan if isinstance(plan, list) else json.loads(plan)
        names: set[str] = set()

        def walk(node: dict) -> None:
            if "Relation Name" in node:
                names.add(node["Relation Name"])
            for child in node.get("Plans", []):
                walk(child)

        walk(plan[0]["Plan"])
        return names

    march = "order_ts >= '2026-03-01 00:00+00' AND order_ts < '2026-04-01 00:00+00'"
    assert scanned(f"SELECT count(*), sum(net_amount) FROM globalcart.fact_orders WHERE {march}") == {
        "fact_orders_p2026_03"
    }
    assert scanned(f"SELECT sum(quantity) FROM globalcart.fact_order_items WHERE {march}") == {
        "fact_order_items_p2026_03"
    }
    every_month = {f"fact_orders_p2026_0{m}" for m in (1, 2, 3, 4)}
    assert every_month <= scanned("SELECT count(*) FROM globalcart.fact_orders")  # the test can fail


def test_fact_retention_drops_whole_months_and_the_summaries_follow(conn):
    now = scalar(conn, "SELECT now()")
    old, recent = now - timedelta(days=200), now - timedelta(days=5)
    stage(conn, "orders", [order(1, order_ts=old, order_status="PAID"), order(2, order_ts=recent, order_status="PAID"),
                           order(3, order_ts=now - timedelta(days=100))])  # fmt: skip
    stage(conn, "order_items", [item(10, 1, quantity=3), item(20, 2, quantity=4), item(30, 3, quantity=1)])
    stage(conn, "payments", [payment(40, 1, payment_status="FAILED"), payment(41, 2)])
    stage(conn, "funnel_events", [
        event("gone", "ADD_TO_CART", event_ts=old, cart_value_usd=Decimal("5")),
        event("spans", "PAGE_VIEW", event_ts=old, channel="email"),
        event("spans", "PURCHASE", event_ts=recent, channel="web"),
        event("kept", "PAGE_VIEW", event_ts=recent),
    ])  # fmt: skip
    refresh(conn)
    old_month = f"p{old:%Y_%m}"
    assert scalar(conn, "SELECT to_regclass(%s)", f"globalcart.fact_orders_{old_month}") is not None
    conn.execute("UPDATE globalcart.etl_settings SET value = '150 days' WHERE name = 'fact_retention'")
    result = scalar(conn, "SELECT globalcart.purge_history()")
    conn.commit()
    dropped = result["fact_partitions_dropped"]
    assert f"fact_orders_{old_month}" in dropped and f"fact_order_items_{old_month}" in dropped
    assert f"fact_funnel_events_{old_month}" in dropped
    assert all(not name.endswith(f"p{recent:%Y_%m}") for name in dropped)
    assert [r[0] for r in fetch(conn, "SELECT order_id FROM globalcart.fact_orders ORDER BY 1")] == [2, 3]
    assert fetch(conn, "SELECT session_id, channel FROM globalcart.kpi_session_state ORDER BY 1") == [
        ("kept", "web"), ("spans", "web")
    ]  # fmt: skip
    assert_summaries_equal_a_rebuild(conn, "after fact retention")
    assert_same_kpis(kpi_values(conn), expected_kpis(conn), "after fact retention")
    assert kpi_values(conn)["units"] == 5
    # nothing more to drop: a second purge drops nothing
    assert scalar(conn, "SELECT globalcart.purge_history()")["fact_partitions_dropped"] == []


def test_audit_rows_go_to_the_partition_of_their_month(conn):
    stage(conn, "orders", [order(1)])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status="PAID", updated_at=MAY)])
    refresh(conn)
    now = scalar(conn, "SELECT now()")
    assert partition_of(conn, "audit_fact_orders", "true") == [f"globalcart.audit_fact_orders_p{now:%Y_%m}"]
    nxt = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert scalar(conn, "SELECT to_regclass(%s)", f"globalcart.audit_fact_orders_p{nxt:%Y_%m}") is not None


def test_every_fact_row_is_stored_once_under_its_partition_key(dsn):
    """The simulator's history (status changes, late returns, duplicates) leaves one row per key."""
    from driver.simulation.deltas import stage_window
    from driver.simulation.seed import seed_history

    as_of = datetime(2026, 10, 1, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        seed_history(conn, dsn, orders=300, seed=5, as_of=as_of - timedelta(days=1), days=70, chunk_orders=100)
        stage_window(conn, since=as_of - timedelta(days=1), until=as_of, seed=6, orders=50, duplicates=0.2,
                     out_of_order=0.2, bad_rows=3)  # fmt: skip
        refresh(conn)
        for table, key in [("fact_orders", "order_id"), ("fact_order_items", "order_item_id"),
                           ("fact_payments", "payment_id"), ("fact_shipments", "shipment_id"),
                           ("fact_returns", "return_id"), ("fact_funnel_events", "event_id")]:  # fmt: skip
            assert scalar(conn, f"SELECT count(*) - count(DISTINCT {key}) FROM globalcart.{table}") == 0, table
        for child in CHILDREN:
            assert scalar(conn, f"""SELECT count(*) FROM globalcart.{child} c JOIN globalcart.fact_orders o
                                     USING (order_id) WHERE c.order_ts <> o.order_ts""") == 0, child  # fmt: skip
        assert scalar(conn, "SELECT count(DISTINCT tableoid) FROM globalcart.fact_orders") >= 3


def test_a_row_written_outside_the_refresh_waits_in_the_default_partition(conn):
    june = datetime(2015, 6, 1, tzinfo=UTC)
    conn.execute(
        """INSERT INTO globalcart.fact_orders (order_id, customer_id, order_ts, order_status, channel, country_code,
                                               currency, gross_amount, discount_amount, shipping_amount, net_amount,
                                               updated_at)
           VALUES (1, 1, %s, 'PLACED', 'web', 'US', 'USD', 10, 0, 0, 10, %s)""",
        (june, june),
    )  # a hand-made backfill of a month that has no partition
    assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_default"]
    stage(conn, "orders", [order(2, order_ts=june + timedelta(days=3))])
    assert refresh(conn)["status"] == "ok"
    # the refresh made June's partition and moved the waiting row into it
    assert partition_of(conn, "fact_orders", "true") == ["globalcart.fact_orders_p2015_06"]
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders_default") == 0


PREVIOUS_RELEASE = "03f8a97"  # main before the scale issue: plain facts, KPIs by full scan


@pytest.mark.slow
def test_upgrading_a_populated_warehouse_keeps_every_row_and_every_kpi(pg_server, tmp_path):
    """A warehouse installed and refreshed by the previous release, then migrated: migration 0006
    moves every row into its month's partition (children with their order's order_ts), 0005's step
    computes the KPI summaries, and the KPIs read from them equal the snapshot the old release took
    by scanning the facts."""
    from helpers import installed_by_release

    from driver.core.migrate import migrate

    with installed_by_release(pg_server, tmp_path, PREVIOUS_RELEASE, "gc_upgrade") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            stage(conn, "orders", [order(1, order_ts=MARCH, order_status="DELIVERED"), order(2, order_ts=MAY),
                                   order(3, order_ts=MAY, order_status="CANCELLED", updated_at=MAY)])  # fmt: skip
            stage(conn, "order_items", [item(10, 1, quantity=3), item(20, 2), item(30, 3)])
            stage(conn, "payments", [payment(40, 1, payment_status="FAILED"), payment(41, 2)])
            stage(conn, "shipments", [shipment(50, 1, delivered_ts=MARCH + timedelta(days=9), promised_ts=MARCH)])
            stage(conn, "returns", [return_(60, 1, return_status="REFUNDED", refund_amount=Decimal("12.5"))])
            stage(conn, "funnel_events", [event("s1", "ADD_TO_CART", event_ts=MARCH, cart_value_usd=Decimal("30")),
                                          event("s2", "PURCHASE", event_ts=MAY)])  # fmt: skip
            assert refresh(conn)["status"] == "ok"
            conn.execute("UPDATE globalcart.dim_customer SET segment = 'VIP'")  # an audit row of the old table
            snapshot = scalar(conn, "SELECT globalcart.snapshot_kpis('before upgrade')")
            before = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s",
                                snapshot))  # fmt: skip
            rows = {
                t: scalar(conn, f"SELECT count(*) FROM globalcart.{t}")
                for t in ("fact_orders", *CHILDREN, "fact_funnel_events", "audit_fact_orders", "audit_dim_customer")
            }
        with psycopg.connect(dsn) as conn:
            report = migrate(conn, with_cron=False)
            assert "0005_kpi_summaries.sql" in report.applied and "0006_monthly_partitions.sql" in report.applied
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert {t: scalar(conn, f"SELECT count(*) FROM globalcart.{t}") for t in rows} == rows
            assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_p2026_03"]
            assert partition_of(conn, "fact_order_items", "order_id = 1") == ["globalcart.fact_order_items_p2026_03"]
            after = kpi_values(conn)
            assert after.keys() == before.keys()
            for name, value in before.items():
                assert (value is None and after[name] is None) or Decimal(after[name]) == Decimal(value), name
            assert_summaries_equal_a_rebuild(conn, "after the upgrade")
            # the upgraded warehouse goes on: a late change moves its bucket, audited in a partition
            stage(conn, "orders", [order(2, order_ts=MAY, order_status="PAID", updated_at=MAY + timedelta(days=1))])
            assert refresh(conn)["orders"]["updated"] == 1
            assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == rows["audit_fact_orders"] + 1
