"""docs/contract.md §2.4: BEFORE UPDATE triggers copy the old version into audit_<table>."""

from decimal import Decimal

import pytest
from helpers import (
    FACT_OF,
    customer,
    fetch,
    item,
    order,
    payment,
    product,
    refresh,
    return_,
    scalar,
    shipment,
    stage,
    ts,
)


def test_update_copies_the_old_version_with_the_run_id(conn):
    stage(conn, "orders", [order(1, order_status="PLACED", net_amount=95, updated_at=ts(1))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status="PAID", net_amount=80, updated_at=ts(2))])
    summary = refresh(conn)

    rows = fetch(
        conn,
        """SELECT audit_id, audited_at, audit_run_id, order_id, order_status, net_amount, updated_at
                          FROM globalcart.audit_fact_orders""",
    )
    assert len(rows) == 1
    audit_id, audited_at, run_id, order_id, status, net, updated_at = rows[0]
    assert audit_id is not None and audited_at is not None
    assert run_id == summary["run_id"]
    assert (order_id, status, net, updated_at) == (1, "PLACED", 95, ts(1))  # the OLD version
    assert fetch(conn, "SELECT order_status, net_amount FROM globalcart.fact_orders") == [("PAID", 80)]


def test_inserts_and_stale_replays_write_no_audit_row(conn):
    stage(conn, "orders", [order(1, updated_at=ts(5))])
    refresh(conn)
    stage(conn, "orders", [order(1, updated_at=ts(5)), order(1, order_status="PAID", updated_at=ts(1))])
    refresh(conn)
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 0


def test_audit_row_carries_every_column_of_the_old_version(conn):
    stage(conn, "orders", [order(1)])
    stage(conn, "shipments", [shipment(1, 1, delivered_ts=ts(60 * 100), updated_at=ts(70))])
    refresh(conn)
    old = fetch(conn, "SELECT * FROM globalcart.fact_shipments")[0]
    stage(conn, "shipments", [shipment(1, 1, delivered_ts=ts(60 * 10), updated_at=ts(80))])
    refresh(conn)
    audit_columns = [
        r[0]
        for r in fetch(
            conn,
            """SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'globalcart' AND table_name = 'audit_fact_shipments' ORDER BY ordinal_position""",
        )
    ]
    assert audit_columns[:3] == ["audit_id", "audited_at", "audit_run_id"]
    columns = [c.name for c in conn.execute("SELECT * FROM globalcart.fact_shipments LIMIT 0").description]
    assert set(columns) <= set(audit_columns)
    copied = fetch(conn, f"SELECT {', '.join(columns)} FROM globalcart.audit_fact_shipments")
    assert copied == [old]
    assert old[columns.index("sla_breached_flag")] is True  # the old version was breached; the copy keeps it


def test_update_outside_a_refresh_is_audited_with_a_null_run_id(conn):
    stage(conn, "customers", [customer(1, segment="CONSUMER")])
    refresh(conn)
    conn.execute("UPDATE globalcart.dim_customer SET segment = 'VIP' WHERE customer_id = 1")
    assert fetch(conn, "SELECT audit_run_id, segment FROM globalcart.audit_dim_customer") == [(None, "CONSUMER")]


@pytest.mark.parametrize("table", sorted([*FACT_OF.values(), "dim_currency", "dim_date"]))
def test_every_fact_and_dimension_has_a_before_update_row_trigger(conn, table):
    rows = fetch(
        conn,
        """SELECT t.tgname, (t.tgtype & 2) <> 0 AS before, (t.tgtype & 1) <> 0 AS row_level,
                                 (t.tgtype & 16) <> 0 AS on_update, (t.tgtype & 8) <> 0 AS on_delete
                          FROM pg_trigger t WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal ORDER BY 1""",
        f"globalcart.{table}",
    )
    # and deletes, once per statement, from its transition table (docs/contract.md §7)
    assert rows == [("audit_after_delete", False, False, False, True), ("audit_before_update", True, True, True, False)]


def test_each_source_update_is_audited(conn):
    """One update per table through the refresh: one audit row each, with the old values."""
    stage(conn, "customers", [customer(1)])
    stage(conn, "products", [product(1)])
    stage(conn, "orders", [order(1)])
    stage(conn, "order_items", [item(1, 1)])
    stage(conn, "payments", [payment(1, 1)])
    stage(conn, "shipments", [shipment(1, 1)])
    stage(conn, "returns", [return_(1, 1)])
    refresh(conn)
    later = ts(10**5)  # 69 days on, still in the past
    stage(conn, "customers", [customer(1, updated_at=later)])
    stage(conn, "products", [product(1, updated_at=later)])
    stage(conn, "orders", [order(1, order_status="PAID", updated_at=later)])
    stage(conn, "order_items", [item(1, 1, updated_at=later)])
    stage(conn, "payments", [payment(1, 1, updated_at=later)])
    stage(conn, "shipments", [shipment(1, 1, updated_at=later)])
    stage(conn, "returns", [return_(1, 1, updated_at=later)])
    run_id = refresh(conn)["run_id"]
    for table in (
        "dim_customer",
        "dim_product",
        "fact_orders",
        "fact_order_items",
        "fact_payments",
        "fact_shipments",
        "fact_returns",
    ):
        assert fetch(conn, f"SELECT audit_run_id, updated_at <> %s FROM globalcart.audit_{table}", later) == [
            (run_id, True)
        ], table


def test_currency_rate_change_is_audited(conn):
    conn.execute("UPDATE globalcart.dim_currency SET usd_rate = 1.10 WHERE currency_code = 'EUR'")
    assert fetch(conn, "SELECT currency_code, usd_rate FROM globalcart.audit_dim_currency") == [
        ("EUR", Decimal("1.08"))
    ]
