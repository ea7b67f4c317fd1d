"""docs/contract.md §2.7 (amended): values must be real. NaN in a numeric column, an infinite timestamp,
an updated_at beyond now() + max_clock_skew are rejected with their reason, in every source and
every column they apply to; the rest of the batch is applied and no watermark moves into the future."""

from datetime import UTC, datetime, timedelta

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
)

MAKE = {
    "customers": lambda **kw: customer(501, **kw),
    "products": lambda **kw: product(501, **kw),
    "orders": lambda **kw: order(501, **kw),
    "order_items": lambda **kw: item(501, 1, **kw),
    "payments": lambda **kw: payment(501, 1, **kw),
    "shipments": lambda **kw: shipment(501, 1, **kw),
    "returns": lambda **kw: return_(501, 1, **kw),
    "funnel_events": lambda **kw: event("s501", "ADD_TO_CART", **kw),
}

NUMERIC_COLUMNS = [
    ("products", "list_price_usd"),
    ("orders", "gross_amount"),
    ("orders", "discount_amount"),
    ("orders", "shipping_amount"),
    ("orders", "net_amount"),
    ("order_items", "unit_price"),
    ("order_items", "discount_amount"),
    ("order_items", "line_amount"),
    ("payments", "amount"),
    ("returns", "refund_amount"),
    ("funnel_events", "cart_value_usd"),
]

TIMESTAMP_COLUMNS = [
    ("customers", "signup_ts"),
    ("customers", "updated_at"),
    ("products", "updated_at"),
    ("orders", "order_ts"),
    ("orders", "updated_at"),
    ("order_items", "updated_at"),
    ("payments", "payment_ts"),
    ("payments", "updated_at"),
    ("shipments", "shipped_ts"),
    ("shipments", "promised_ts"),
    ("shipments", "delivered_ts"),
    ("shipments", "updated_at"),
    ("returns", "return_ts"),
    ("returns", "updated_at"),
    ("funnel_events", "event_ts"),
    ("funnel_events", "updated_at"),
]


@pytest.mark.parametrize(("source", "column"), NUMERIC_COLUMNS)
def test_nan_is_rejected_as_not_a_number(conn, source, column):
    stage(conn, "orders", [order(1)])
    stage(conn, source, [MAKE[source](**{column: "NaN"})])
    summary = refresh(conn)
    assert [(s, r) for s, r, _ in rejects(conn)] == [(source, f"not_a_number: {column}")]
    assert summary[source]["rejected"] == 1
    if source == "orders":
        assert fetch(conn, "SELECT order_id FROM globalcart.fact_orders") == [(1,)]  # the good one
    else:
        assert scalar(conn, f"SELECT count(*) FROM globalcart.{FACT_OF[source]}") == 0


def test_nan_in_several_columns_names_them_all_and_kpis_stay_numbers(conn):
    stage(conn, "orders", [order(1), order(2, gross_amount="NaN", net_amount="NaN")])
    refresh(conn)
    assert [r for _, r, _ in rejects(conn)] == ["not_a_number: gross_amount, net_amount"]
    kpis = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values()"))
    assert (kpis["gmv_usd"], kpis["net_revenue_usd"], kpis["aov_usd"]) == (100, 95, 95)


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
@pytest.mark.parametrize(("source", "column"), TIMESTAMP_COLUMNS)
def test_infinite_timestamp_is_rejected_as_invalid_timestamp(conn, source, column, value):
    stage(conn, "orders", [order(1)])
    stage(conn, source, [MAKE[source](**{column: value})])
    summary = refresh(conn)
    assert [(s, r) for s, r, _ in rejects(conn)] == [(source, f"invalid_timestamp: {column}")]
    assert summary[source]["rejected"] == 1
    watermarks = fetch(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE watermark_ts IS NOT NULL")
    assert all(w[0] < datetime.now(UTC) for w in watermarks)


@pytest.mark.parametrize("source", list(MAKE))
def test_updated_at_beyond_the_clock_skew_is_rejected_as_future_timestamp(conn, source):
    now = scalar(conn, "SELECT now()")
    stage(conn, "orders", [order(1)])
    stage(conn, source, [MAKE[source](updated_at=now + timedelta(days=365 * 20))])
    summary = refresh(conn)
    assert [(s, r) for s, r, _ in rejects(conn)] == [(source, "future_timestamp: updated_at")]
    assert summary[source]["rejected"] == 1
    assert scalar(conn, "SELECT max(watermark_ts) FROM globalcart.etl_watermarks") < now + timedelta(minutes=5)


def test_a_far_future_version_cannot_win_for_ever(conn):
    """The trap of the issue: a version from 2046 would make every later real version stale."""
    now = scalar(conn, "SELECT now()")
    stage(conn, "orders", [order(1, updated_at=now - timedelta(hours=1))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status="CANCELLED", updated_at=now + timedelta(days=365 * 20))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status="PAID", updated_at=now)])
    summary = refresh(conn)
    assert summary["orders"]["updated"] == 1
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == "PAID"
    assert scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'") == now


def test_clock_skew_is_a_setting_and_a_small_skew_is_accepted(conn):
    now = scalar(conn, "SELECT now()")
    stage(conn, "orders", [order(1, updated_at=now + timedelta(minutes=2))])  # within the default 5 minutes
    assert refresh(conn)["orders"]["inserted"] == 1
    conn.execute("UPDATE globalcart.etl_settings SET value = '10 seconds' WHERE name = 'max_clock_skew'")
    stage(conn, "orders", [order(2, updated_at=scalar(conn, "SELECT now()") + timedelta(minutes=2))])
    summary = refresh(conn)
    assert summary["orders"]["rejected"] == 1
    assert [r for _, r, _ in rejects(conn)] == ["future_timestamp: updated_at"]


def test_the_reject_record_keeps_the_bad_values(conn):
    stage(conn, "orders", [order(7, gross_amount="NaN", order_ts="infinity")])
    refresh(conn)
    [(_, reason, record)] = rejects(conn)
    assert reason == "not_a_number: gross_amount"  # the first reason that applies
    assert (record["gross_amount"], record["order_ts"]) == ("NaN", "infinity")
