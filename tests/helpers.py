"""Building staged rows and reading results in tests. Rows are dicts of business columns;
``stage`` COPYs them into globalcart.stg_<source> as a producer would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SOURCES = ("customers", "products", "orders", "order_items", "payments", "shipments", "returns", "funnel_events")
FACT_OF = {
    "customers": "dim_customer",
    "products": "dim_product",
    "orders": "fact_orders",
    "order_items": "fact_order_items",
    "payments": "fact_payments",
    "shipments": "fact_shipments",
    "returns": "fact_returns",
    "funnel_events": "fact_funnel_events",
}
KEY_OF = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "payments": "payment_id",
    "shipments": "shipment_id",
    "returns": "return_id",
    "funnel_events": "event_id",
}


def ts(minutes: float = 0) -> datetime:
    """A fixed point in time plus some minutes: versions are ordered by these."""
    return T0 + timedelta(minutes=minutes)


def customer(customer_id: int, **over: Any) -> dict:
    row = dict(
        customer_id=customer_id,
        full_name=f"Customer {customer_id}",
        email=f"c{customer_id}@example.com",
        country_code="US",
        signup_ts=ts(-10_000),
        segment="CONSUMER",
        updated_at=ts(0),
    )
    return row | over


def product(product_id: int, **over: Any) -> dict:
    row = dict(
        product_id=product_id,
        sku=f"SKU-{product_id}",
        product_name=f"Product {product_id}",
        category="Books",
        list_price_usd=10,
        updated_at=ts(0),
    )
    return row | over


def order(order_id: int, **over: Any) -> dict:
    row = dict(
        order_id=order_id,
        customer_id=1,
        order_ts=ts(0),
        order_status="PLACED",
        channel="web",
        country_code="US",
        currency="USD",
        gross_amount=100,
        discount_amount=10,
        shipping_amount=5,
        net_amount=95,
        updated_at=ts(0),
    )
    return row | over


def item(order_item_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        order_item_id=order_item_id,
        order_id=order_id,
        product_id=1,
        quantity=2,
        unit_price=50,
        discount_amount=10,
        line_amount=90,
        updated_at=ts(0),
    )
    return row | over


def payment(payment_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        payment_id=payment_id,
        order_id=order_id,
        payment_ts=ts(1),
        payment_method="card",
        payment_status="CAPTURED",
        amount=95,
        currency="USD",
        updated_at=ts(1),
    )
    return row | over


def shipment(shipment_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        shipment_id=shipment_id,
        order_id=order_id,
        carrier="DHL",
        shipped_ts=ts(60),
        promised_ts=ts(60 * 72),
        delivered_ts=None,
        shipment_status="IN_TRANSIT",
        sla_breached_flag=None,
        updated_at=ts(60),
    )
    return row | over


def return_(return_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        return_id=return_id,
        order_id=order_id,
        order_item_id=None,
        return_ts=ts(60 * 24 * 10),
        reason="damaged",
        refund_amount=20,
        return_status="REQUESTED",
        updated_at=ts(60 * 24 * 10),
    )
    return row | over


def event(session_id: str, event_type: str, **over: Any) -> dict:
    row = dict(
        event_id=uuid.uuid4(),
        session_id=session_id,
        customer_id=None,
        event_ts=ts(0),
        event_type=event_type,
        product_id=None,
        order_id=None,
        cart_value_usd=None,
        channel="web",
        updated_at=ts(0),
    )
    return row | over


def stage(conn: psycopg.Connection, source: str, rows: list[dict]) -> None:
    """COPY rows into globalcart.stg_<source>, naming only their business columns."""
    if not rows:
        return
    columns = list(rows[0])
    with conn.cursor() as cur:
        with cur.copy(f"COPY globalcart.stg_{source} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(c) for c in columns])


def refresh(conn: psycopg.Connection) -> dict:
    row = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()
    assert row is not None
    return row[0]


def fetch(conn: psycopg.Connection, sql: str, *params: Any) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def scalar(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def staged_count(conn: psycopg.Connection) -> int:
    return sum(scalar(conn, f"SELECT count(*) FROM globalcart.stg_{s}") for s in SOURCES)


def rejects(conn: psycopg.Connection, source: str | None = None) -> list[tuple[str, str, dict]]:
    """(source_name, reason, record) of every reject, oldest first."""
    sql = "SELECT source_name, reason, record FROM globalcart.etl_rejects"
    if source:
        return fetch(conn, sql + " WHERE source_name = %s ORDER BY reject_id", source)
    return fetch(conn, sql + " ORDER BY reject_id")


def table_digest(conn: psycopg.Connection, table: str) -> list[tuple]:
    """Every row of a globalcart table as text, sorted: equal digests mean equal contents."""
    return fetch(conn, f"SELECT t::text FROM globalcart.{table} t ORDER BY 1")
