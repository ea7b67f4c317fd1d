"""docs/contract.md §2.7: bad rows are quarantined with a reason; the rest of the batch is applied."""

from datetime import timedelta

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
    staged_count,
)

# (source, bad row, expected reason) — every kind of bad input of guarantee 7, in every source it applies to
BAD_ROWS = [
    ("customers", customer(901, email=None), "missing_required_value: email"),
    ("products", product(901, list_price_usd=-1), "negative_amount: list_price_usd"),
    ("products", product(902, sku=None, category=None), "missing_required_value: sku, category"),
    ("orders", order(901, order_status="SHIPPING"), "unknown_enum_value: order_status"),
    ("orders", order(902, currency="XXX"), "unknown_currency: currency"),
    ("orders", order(903, net_amount=-5), "negative_amount: net_amount"),
    ("orders", order(904, updated_at=None), "missing_required_value: updated_at"),
    ("orders", order(None), "missing_required_value: order_id"),
    ("order_items", item(901, 1, quantity=0), "non_positive_quantity: quantity"),
    ("order_items", item(902, 1, quantity=-3), "non_positive_quantity: quantity"),
    ("order_items", item(903, 1, unit_price=-1), "negative_amount: unit_price"),
    ("order_items", item(904, 1, product_id=None), "missing_required_value: product_id"),
    ("payments", payment(901, 1, payment_status="PENDING"), "unknown_enum_value: payment_status"),
    ("payments", payment(902, 1, currency="ZZZ"), "unknown_currency: currency"),
    ("payments", payment(903, 1, amount=-95), "negative_amount: amount"),
    ("shipments", shipment(901, 1, shipment_status="LOST"), "unknown_enum_value: shipment_status"),
    ("shipments", shipment(902, 1, promised_ts=None), "missing_required_value: promised_ts"),
    ("returns", return_(901, 1, return_status="MAYBE"), "unknown_enum_value: return_status"),
    ("returns", return_(902, 1, refund_amount=-20), "negative_amount: refund_amount"),
    ("funnel_events", event("s9", "CLICK"), "unknown_enum_value: event_type"),
    ("funnel_events", event("s9", "ADD_TO_CART", cart_value_usd=-1), "negative_amount: cart_value_usd"),
    ("funnel_events", event(None, "PAGE_VIEW"), "missing_required_value: session_id"),
]

GOOD_ROWS = {
    "customers": [customer(1)],
    "products": [product(1)],
    "orders": [order(1), order(2, currency="EUR")],
    "order_items": [item(1, 1), item(2, 2)],
    "payments": [payment(1, 1), payment(2, 2, currency="EUR")],
    "shipments": [shipment(1, 1)],
    "returns": [return_(1, 1)],
    "funnel_events": [event("s1", "PAGE_VIEW"), event("s1", "PURCHASE", cart_value_usd=5)],
}


def test_every_kind_of_bad_row_is_rejected_with_its_reason_and_good_rows_apply(conn):
    for source, rows in GOOD_ROWS.items():
        stage(conn, source, rows)
    for source, row, _ in BAD_ROWS:
        stage(conn, source, [row])

    summary = refresh(conn)

    got = rejects(conn)
    assert sorted((s, r) for s, r, _ in got) == sorted((s, r) for s, _, r in BAD_ROWS)
    for source, rows in GOOD_ROWS.items():
        assert scalar(conn, f"SELECT count(*) FROM globalcart.{FACT_OF[source]}") == len(rows), source
        assert summary[source]["inserted"] == len(rows), source
        assert summary[source]["rejected"] == sum(1 for s, _, _ in BAD_ROWS if s == source), source
    assert staged_count(conn) == 0
    assert fetch(conn, "SELECT DISTINCT run_id FROM globalcart.etl_rejects") == [(summary["run_id"],)]


def test_reject_record_is_the_staged_row_as_jsonb(conn):
    stage(conn, "orders", [order(77, currency="XXX", net_amount=12.5)])
    refresh(conn)
    [(source, reason, record)] = rejects(conn)
    assert (source, reason) == ("orders", "unknown_currency: currency")
    assert record["order_id"] == 77 and record["currency"] == "XXX" and record["net_amount"] == 12.5
    assert {"order_status", "updated_at", "stg_id", "ingested_at"} <= set(record)
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 0


@pytest.mark.parametrize("source", ["order_items", "payments", "shipments", "returns"])
def test_child_moved_to_another_order_is_rejected(conn, source):
    make = {"order_items": item, "payments": payment, "shipments": shipment, "returns": return_}[source]
    stage(conn, "orders", [order(1), order(2)])
    stage(conn, source, [make(5, 1)])
    refresh(conn)
    stage(conn, source, [make(5, 2, updated_at=make(5, 2)["updated_at"] + timedelta(days=1))])
    refresh(conn)
    assert [(s, r) for s, r, _ in rejects(conn)] == [(source, "order_id_changed")]
    assert fetch(conn, f"SELECT order_id FROM globalcart.{FACT_OF[source]}") == [(1,)]


def test_a_bad_row_never_aborts_the_run(conn):
    stage(conn, "orders", [order(i, net_amount=-1 if i % 2 else 10) for i in range(1, 101)])
    summary = refresh(conn)
    assert summary["status"] == "ok"
    assert (summary["orders"]["inserted"], summary["orders"]["rejected"]) == (50, 50)
