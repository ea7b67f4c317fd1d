"""docs/contract.md §2.8: dimensions before facts, orders before children, early children wait,
orphans after the timeout, inferred dimension members."""

import time

import pytest
from helpers import (
    FACT_OF,
    customer,
    event,
    fetch,
    item,
    order,
    payment,
    product,
    refresh,
    rejects,
    return_,
    scalar,
    shipment,
    stage,
    ts,
)

CHILDREN = {"order_items": item, "payments": payment, "shipments": shipment, "returns": return_}


def test_order_and_its_children_staged_together_apply_in_one_call(conn):
    # children staged (and committed) before their order: order of staging does not matter
    stage(conn, "returns", [return_(1, 1)])
    stage(conn, "shipments", [shipment(1, 1)])
    stage(conn, "payments", [payment(1, 1)])
    stage(conn, "order_items", [item(1, 1), item(2, 1)])
    stage(conn, "orders", [order(1)])
    summary = refresh(conn)
    for source in CHILDREN:
        assert summary[source]["deferred"] == 0, source
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_order_items") == 2
    for table in ("fact_payments", "fact_shipments", "fact_returns"):
        assert scalar(conn, f"SELECT count(*) FROM globalcart.{table}") == 1


@pytest.mark.parametrize("source", list(CHILDREN))
def test_early_child_waits_for_its_order_and_is_applied_with_it(conn, source):
    stage(conn, source, [CHILDREN[source](1, 42)])
    first = refresh(conn)
    assert first[source]["deferred"] == 1
    assert scalar(conn, f"SELECT count(*) FROM globalcart.{FACT_OF[source]}") == 0
    assert scalar(conn, f"SELECT count(*) FROM globalcart.stg_{source}") == 1  # kept, not lost

    second = refresh(conn)  # still no order: still waiting
    assert second[source]["deferred"] == 1

    stage(conn, "orders", [order(42)])
    third = refresh(conn)
    assert third[source]["inserted"] == 1 and third[source]["deferred"] == 0
    assert scalar(conn, f"SELECT order_id FROM globalcart.{FACT_OF[source]}") == 42
    assert scalar(conn, f"SELECT count(*) FROM globalcart.stg_{source}") == 0
    assert rejects(conn) == []


def test_child_of_a_rejected_order_waits(conn):
    stage(conn, "orders", [order(1, currency="XXX")])
    stage(conn, "payments", [payment(1, 1)])
    summary = refresh(conn)
    assert summary["orders"]["rejected"] == 1
    assert summary["payments"]["deferred"] == 1


@pytest.mark.parametrize("source", list(CHILDREN))
def test_child_waiting_longer_than_the_orphan_timeout_is_rejected_as_orphan(conn, source):
    stage(conn, source, [CHILDREN[source](1, 42)])
    # first staged 25 hours ago (the default timeout is 24 hours)
    conn.execute(f"UPDATE globalcart.stg_{source} SET ingested_at = now() - interval '25 hours'")
    summary = refresh(conn)
    assert summary[source]["rejected"] == 1 and summary[source]["deferred"] == 0
    [(src, reason, record)] = rejects(conn)
    assert (src, reason, record["order_id"]) == (source, "orphan", 42)
    assert scalar(conn, f"SELECT count(*) FROM globalcart.stg_{source}") == 0


def test_orphan_timeout_comes_from_etl_settings_and_counts_from_first_staging(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = '1 second' WHERE name = 'orphan_timeout'")
    stage(conn, "payments", [payment(1, 42)])
    first_staged = scalar(conn, "SELECT ingested_at FROM globalcart.stg_payments")
    assert refresh(conn)["payments"]["deferred"] == 1
    assert scalar(conn, "SELECT ingested_at FROM globalcart.stg_payments") == first_staged  # kept on deferral
    time.sleep(1.2)
    summary = refresh(conn)
    assert summary["payments"]["rejected"] == 1
    assert [r for _, r, _ in rejects(conn)] == ["orphan"]


def test_unparsable_orphan_timeout_fails_the_call_with_a_hint(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'orphan_timeout'")
    stage(conn, "orders", [order(1)])
    stage(conn, "payments", [payment(1, 1)])
    summary = refresh(conn)
    assert summary["status"] == "failed"
    assert summary["error"]["sqlstate"] == "GC001" and "orphan_timeout" in summary["error"]["message"]
    assert "UPDATE globalcart.etl_settings" in summary["error"]["hint"]
    assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 1  # nothing lost
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 0


def test_unknown_customer_and_product_get_inferred_members(conn):
    stage(conn, "orders", [order(1, customer_id=7)])
    stage(conn, "order_items", [item(1, 1, product_id=8)])
    stage(conn, "funnel_events", [event("s1", "PRODUCT_VIEW", customer_id=9, product_id=10)])
    summary = refresh(conn)
    assert fetch(conn, "SELECT customer_id, is_inferred FROM globalcart.dim_customer ORDER BY 1") == [
        (7, True),
        (9, True),
    ]
    assert fetch(conn, "SELECT product_id, is_inferred FROM globalcart.dim_product ORDER BY 1") == [
        (8, True),
        (10, True),
    ]
    assert summary["orders"]["inferred_customers"] == 1
    assert summary["order_items"]["inferred_products"] == 1
    # every fact joins to its dimensions
    assert (
        scalar(
            conn,
            """SELECT count(*) FROM globalcart.fact_orders o
                           JOIN globalcart.dim_customer c USING (customer_id)""",
        )
        == 1
    )


def test_first_real_row_replaces_the_inferred_member_whatever_its_updated_at(conn):
    stage(conn, "orders", [order(1, customer_id=7)])
    stage(conn, "order_items", [item(1, 1, product_id=8)])
    refresh(conn)
    very_old = ts(-(10**6))
    stage(conn, "customers", [customer(7, full_name="Ada Lovelace", updated_at=very_old)])
    stage(conn, "products", [product(8, product_name="Difference Engine", updated_at=very_old)])
    summary = refresh(conn)
    assert fetch(conn, "SELECT full_name, is_inferred, updated_at FROM globalcart.dim_customer") == [
        ("Ada Lovelace", False, very_old)
    ]
    assert fetch(conn, "SELECT product_name, is_inferred FROM globalcart.dim_product") == [("Difference Engine", False)]
    assert summary["customers"]["updated"] == 1
    # once real, newest-wins applies again: an older version is stale
    stage(conn, "customers", [customer(7, full_name="Older", updated_at=ts(-2 * 10**6))])
    refresh(conn)
    assert scalar(conn, "SELECT full_name FROM globalcart.dim_customer") == "Ada Lovelace"


def test_dimensions_are_applied_before_facts_in_one_call(conn):
    stage(conn, "orders", [order(1, customer_id=7)])
    stage(conn, "customers", [customer(7, full_name="Grace Hopper")])
    summary = refresh(conn)
    assert fetch(conn, "SELECT full_name, is_inferred FROM globalcart.dim_customer") == [("Grace Hopper", False)]
    assert summary["orders"]["inferred_customers"] == 0
