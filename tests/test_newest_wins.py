"""docs/contract.md §2.2 (newest wins) and 2.3 (idempotent)."""

from helpers import (
    FACT_OF,
    SOURCES,
    customer,
    event,
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
    table_digest,
    ts,
)


def test_several_versions_in_one_batch_keep_the_newest(conn):
    stage(
        conn,
        "orders",
        [
            order(1, order_status="PAID", updated_at=ts(2)),
            order(1, order_status="DELIVERED", updated_at=ts(9)),  # newest, staged in the middle
            order(1, order_status="SHIPPED", updated_at=ts(5)),
        ],
    )
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_status, updated_at FROM globalcart.fact_orders") == [("DELIVERED", ts(9))]
    assert summary["orders"]["claimed"] == 3
    assert summary["orders"]["inserted"] == 1
    assert summary["orders"]["stale"] == 2


def test_older_version_arriving_later_changes_nothing_and_counts_stale(conn):
    stage(conn, "orders", [order(1, order_status="SHIPPED", net_amount=95, updated_at=ts(10))])
    refresh(conn)
    stage(
        conn,
        "orders",
        [
            order(1, order_status="PAID", net_amount=1, updated_at=ts(5)),  # older
            order(1, order_status="SHIPPED", net_amount=2, updated_at=ts(10)),  # same updated_at: not greater
        ],
    )
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_status, net_amount FROM globalcart.fact_orders") == [("SHIPPED", 95)]
    assert summary["orders"]["stale"] == 2
    assert summary["orders"]["updated"] == 0
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 0


def test_newer_version_replaces_the_stored_row(conn):
    stage(conn, "orders", [order(1, net_amount=95, updated_at=ts(1))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status="PAID", net_amount=90, updated_at=ts(2))])
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_status, net_amount, updated_at FROM globalcart.fact_orders") == [
        ("PAID", 90, ts(2))
    ]
    assert summary["orders"]["updated"] == 1


def test_exact_replays_in_one_batch_count_as_duplicate(conn):
    stage(conn, "payments", [payment(7, 1), payment(7, 1), payment(7, 1, updated_at=ts(0))])
    stage(conn, "orders", [order(1)])
    summary = refresh(conn)
    counts = summary["payments"]
    assert (counts["inserted"], counts["duplicate"], counts["stale"]) == (1, 1, 1)
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_payments") == 1


def test_newest_wins_for_every_source(conn):
    """Each source keeps its newest version whatever the staging order."""
    stage(conn, "customers", [customer(1, segment="NEW", updated_at=ts(5)), customer(1, segment="OLD")])
    stage(conn, "products", [product(1, category="NEW", updated_at=ts(5)), product(1, category="OLD")])
    stage(conn, "orders", [order(1, channel="NEW", updated_at=ts(5)), order(1, channel="OLD")])
    stage(conn, "order_items", [item(1, 1, quantity=5, updated_at=ts(5)), item(1, 1, quantity=1)])
    stage(conn, "payments", [payment(1, 1, payment_method="NEW", updated_at=ts(5)), payment(1, 1)])
    stage(conn, "shipments", [shipment(1, 1, carrier="NEW", updated_at=ts(500)), shipment(1, 1)])
    stage(conn, "returns", [return_(1, 1, reason="NEW", updated_at=ts(90_000)), return_(1, 1)])
    refresh(conn)
    assert scalar(conn, "SELECT segment FROM globalcart.dim_customer") == "NEW"
    assert scalar(conn, "SELECT category FROM globalcart.dim_product") == "NEW"
    assert scalar(conn, "SELECT channel FROM globalcart.fact_orders") == "NEW"
    assert scalar(conn, "SELECT quantity FROM globalcart.fact_order_items") == 5
    assert scalar(conn, "SELECT payment_method FROM globalcart.fact_payments") == "NEW"
    assert scalar(conn, "SELECT carrier FROM globalcart.fact_shipments") == "NEW"
    assert scalar(conn, "SELECT reason FROM globalcart.fact_returns") == "NEW"


def _full_batch():
    delivered = ts(60 * 24 * 3)
    return {
        "customers": [customer(1), customer(2)],
        "products": [product(1), product(2)],
        "orders": [order(1, order_status="DELIVERED", updated_at=delivered), order(2, customer_id=2)],
        "order_items": [item(1, 1), item(2, 1, product_id=2), item(3, 2)],
        "payments": [payment(1, 1), payment(2, 2, payment_status="FAILED")],
        "shipments": [shipment(1, 1, delivered_ts=delivered, shipment_status="DELIVERED", updated_at=delivered)],
        "returns": [return_(1, 1, return_status="REFUNDED")],
        "funnel_events": [event("s1", "PAGE_VIEW"), event("s1", "ADD_TO_CART", cart_value_usd=30)],
    }


def _digest_all(conn):
    tables = [*FACT_OF.values(), *(f"audit_{t}" for t in FACT_OF.values()), "etl_watermarks"]
    return {t: table_digest(conn, t) for t in tables}


def test_the_same_batch_staged_twice_changes_nothing_the_second_time(conn):
    batch = _full_batch()
    for source in SOURCES:
        stage(conn, source, batch[source])
    first = refresh(conn)
    assert first["derived"]["orders_returned"] == 1  # the batch does change derived state once
    before = _digest_all(conn)

    for source in SOURCES:
        stage(conn, source, batch[source])
    second = refresh(conn)

    assert _digest_all(conn) == before
    for source in SOURCES:
        counts = second[source]
        assert counts["inserted"] == counts["updated"] == counts["rejected"] == counts["deferred"] == 0, source
        assert counts["stale"] + counts["duplicate"] == len(batch[source]), source
    assert second["funnel_events"]["duplicate"] == 2
    assert second["derived"]["orders_returned"] == 0
