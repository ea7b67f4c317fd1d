"""docs/contract.md §3: every KPI equals its hand-computed value on a small dataset."""

from decimal import Decimal

import psycopg
import pytest
from helpers import event, fetch, item, order, payment, refresh, return_, scalar, shipment, stage, ts

KPI_NAMES = [
    "orders", "gmv_usd", "net_revenue_usd", "aov_usd", "units", "return_rate", "refunds_usd",
    "sla_breach_rate", "on_time_delivery_rate", "payment_failure_rate", "conversion_rate",
    "cart_abandonment_rate", "revenue_lost_due_to_failures", "revenue_lost_due_to_abandonment",
]  # fmt: skip


def build_dataset(conn):
    stage(conn, "orders", [
        order(1, currency="USD", order_status="DELIVERED", gross_amount=100, net_amount=90),
        order(2, currency="EUR", order_status="COMPLETED", gross_amount=200, net_amount=180),  # rate 1.08
        order(3, currency="USD", order_status="DELIVERED", gross_amount=50, discount_amount=0, net_amount=50),
        order(4, currency="USD", order_status="CANCELLED", gross_amount=1000, net_amount=1000),
        order(5, currency="GBP", order_status="PLACED", gross_amount=10, discount_amount=0, net_amount=10),  # 1.27
    ])  # fmt: skip
    stage(conn, "order_items", [
        item(1, 1, quantity=2), item(2, 2, quantity=3), item(3, 4, quantity=100), item(4, 5, quantity=1),
    ])  # fmt: skip
    stage(conn, "returns", [
        return_(1, 3, return_status="REFUNDED", refund_amount=20),   # USD; order 3 turns RETURNED
        return_(2, 2, return_status="REFUNDED", refund_amount=10),   # EUR 10 = USD 10.80; order 2 RETURNED
        return_(3, 1, return_status="REJECTED", refund_amount=99),   # neither refund nor RETURNED
    ])  # fmt: skip
    stage(conn, "shipments", [
        shipment(1, 1, promised_ts=ts(100), delivered_ts=ts(200)),  # late
        shipment(2, 2, promised_ts=ts(100), delivered_ts=ts(50)),   # on time
        shipment(3, 3, promised_ts=ts(100), delivered_ts=None),     # not delivered: not counted
    ])  # fmt: skip
    stage(conn, "payments", [
        payment(1, 1), payment(2, 2), payment(3, 3, payment_status="FAILED"), payment(4, 3),
    ])  # fmt: skip
    stage(conn, "funnel_events", [
        event("s1", "PAGE_VIEW"), event("s1", "ADD_TO_CART", cart_value_usd=50),
        event("s1", "CHECKOUT_START", cart_value_usd=50), event("s1", "PURCHASE", cart_value_usd=50),
        event("s2", "PAGE_VIEW"), event("s2", "ADD_TO_CART", cart_value_usd=30),
        event("s2", "PAYMENT_FAILED", cart_value_usd=40),
        event("s3", "ADD_TO_CART", cart_value_usd=20), event("s3", "ADD_TO_CART", cart_value_usd=25),
        event("s4", "PAGE_VIEW"),
    ])  # fmt: skip
    summary = refresh(conn)
    assert summary["totals"]["rejected"] == 0


D = Decimal
EXPECTED = {
    "orders": D(4),  # 1, 2, 3, 5 (4 is CANCELLED)
    "gmv_usd": D("100") + D("216") + D("50") + D("12.70"),  # 378.70
    "net_revenue_usd": D("347.10") - D("30.80"),  # net of live orders - REFUNDED refunds
    "aov_usd": D("347.10") / 4,
    "units": D(6),  # 2 + 3 + 1 (the cancelled order's 100 excluded)
    "return_rate": D(2) / D(3),  # RETURNED 2, 3 of DELIVERED/COMPLETED/RETURNED 1, 2, 3
    "refunds_usd": D("30.80"),
    "sla_breach_rate": D("0.5"),
    "on_time_delivery_rate": D("0.5"),
    "payment_failure_rate": D("0.25"),
    "conversion_rate": D("0.25"),  # s1 of s1..s4
    "cart_abandonment_rate": D(2) / D(3),  # s2, s3 of s1, s2, s3
    "revenue_lost_due_to_failures": D(40),  # s2: max cart value
    "revenue_lost_due_to_abandonment": D(25),  # s3: max cart value
}


def _snapshot(conn, label):
    """The snapshot's id and its values, in the order stored with it (kpi_order)."""
    snapshot_id = scalar(conn, "SELECT globalcart.snapshot_kpis(%s)", label)
    rows = fetch(
        conn,
        "SELECT kpi_order, kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s ORDER BY kpi_order",
        snapshot_id,
    )
    assert [order for order, _, _ in rows] == list(range(1, len(KPI_NAMES) + 1))
    return snapshot_id, {name: value for _, name, value in rows}


def test_every_kpi_equals_its_hand_computed_value(conn):
    build_dataset(conn)
    _, values = _snapshot(conn, "hand")
    assert list(values) == KPI_NAMES  # the contract's order, stored with the snapshot
    for name, expected in EXPECTED.items():
        assert values[name] == pytest.approx(expected, abs=Decimal("1e-12")), name


def test_empty_denominators_are_null_and_empty_sums_zero(conn):
    _, values = _snapshot(conn, "empty")
    assert list(values) == KPI_NAMES
    for name in ("aov_usd", "return_rate", "sla_breach_rate", "on_time_delivery_rate", "payment_failure_rate",
                 "conversion_rate", "cart_abandonment_rate"):  # fmt: skip
        assert values[name] is None, name
    for name in ("orders", "gmv_usd", "net_revenue_usd", "units", "refunds_usd", "revenue_lost_due_to_failures",
                 "revenue_lost_due_to_abandonment"):  # fmt: skip
        assert values[name] == 0, name


def test_snapshot_rows_carry_label_time_and_id(conn):
    first, _ = _snapshot(conn, "before")
    second, _ = _snapshot(conn, "before")
    assert second > first
    rows = fetch(conn, "SELECT DISTINCT snapshot_id, label FROM globalcart.kpi_snapshots ORDER BY 1")
    assert rows == [(first, "before"), (second, "before")]
    assert scalar(conn, "SELECT count(*) FROM globalcart.kpi_snapshots WHERE taken_at IS NULL") == 0


def test_compare_uses_the_latest_snapshot_of_each_label(conn):
    _snapshot(conn, "before")  # an older 'before', superseded by the next one
    stage(conn, "orders", [order(1, net_amount=100, gross_amount=100, discount_amount=0)])
    refresh(conn)
    _snapshot(conn, "before")
    stage(conn, "orders", [order(2, net_amount=300, gross_amount=300, discount_amount=0)])
    refresh(conn)
    _snapshot(conn, "after")
    rows = {r[0]: r[1:] for r in fetch(conn, "SELECT * FROM globalcart.compare_kpis()")}
    assert [r[0] for r in fetch(conn, "SELECT kpi_name FROM globalcart.compare_kpis('before', 'after')")] == KPI_NAMES
    assert rows["orders"] == (1, 2, 1, 100)
    assert rows["gmv_usd"] == (100, 400, 300, 300)
    assert rows["aov_usd"] == (100, 200, 100, 100)
    before, after, change, pct = rows["return_rate"]
    assert (before, after, change, pct) == (None, None, None, None)


def test_compare_with_an_unknown_label_says_which_labels_exist(conn):
    _snapshot(conn, "before")
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT * FROM globalcart.compare_kpis('before', 'aftr')")
    assert err.value.diag.sqlstate == "GC003"
    assert "aftr" in err.value.diag.message_primary
    assert "'before'" in err.value.diag.message_hint


def test_snapshot_needs_a_label(conn):
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT globalcart.snapshot_kpis('  ')")
    assert err.value.diag.sqlstate == "GC002"
