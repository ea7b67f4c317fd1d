"""docs/contract.md §2.6: returns turn orders RETURNED, orders never move backwards, the SLA flag is computed."""

import psycopg
import pytest
from helpers import fetch, order, refresh, rejects, return_, scalar, shipment, stage, ts


@pytest.mark.parametrize("status", ["DELIVERED", "COMPLETED"])
def test_return_turns_a_delivered_or_completed_order_returned_with_an_audit_row(conn, status):
    stage(conn, "orders", [order(1, order_status=status, updated_at=ts(10))])
    refresh(conn)
    stage(conn, "returns", [return_(1, 1, return_status="REQUESTED", updated_at=ts(500))])
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_status, updated_at FROM globalcart.fact_orders") == [("RETURNED", ts(500))]
    assert summary["derived"]["orders_returned"] == 1
    assert fetch(conn, "SELECT audit_run_id, order_status FROM globalcart.audit_fact_orders") == [
        (summary["run_id"], status)
    ]


def test_rejected_return_leaves_the_order_alone(conn):
    stage(conn, "orders", [order(1, order_status="DELIVERED")])
    stage(conn, "returns", [return_(1, 1, return_status="REJECTED")])
    refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == "DELIVERED"


@pytest.mark.parametrize("status", ["PLACED", "PAID", "SHIPPED", "CANCELLED"])
def test_return_does_not_touch_an_order_that_is_not_delivered(conn, status):
    stage(conn, "orders", [order(1, order_status=status)])
    stage(conn, "returns", [return_(1, 1)])
    refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == status


def test_return_takes_effect_when_the_order_is_delivered_later(conn):
    stage(conn, "orders", [order(1, order_status="SHIPPED", updated_at=ts(10))])
    stage(conn, "returns", [return_(1, 1, updated_at=ts(20))])
    refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == "SHIPPED"
    stage(conn, "orders", [order(1, order_status="DELIVERED", updated_at=ts(30))])
    refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == "RETURNED"


def test_order_and_return_in_one_batch(conn):
    stage(conn, "returns", [return_(1, 1)])
    stage(conn, "orders", [order(1, order_status="DELIVERED")])
    summary = refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders") == "RETURNED"
    assert summary["returns"]["inserted"] == 1


ALLOWED = [
    ("PLACED", "PAID"),
    ("PLACED", "DELIVERED"),
    ("PAID", "SHIPPED"),
    ("SHIPPED", "COMPLETED"),
    ("DELIVERED", "COMPLETED"),
    ("COMPLETED", "RETURNED"),
    ("PLACED", "CANCELLED"),
    ("PAID", "CANCELLED"),
    ("SHIPPED", "SHIPPED"),
    ("CANCELLED", "CANCELLED"),
]
FORBIDDEN = [
    ("PAID", "PLACED"),
    ("DELIVERED", "SHIPPED"),
    ("COMPLETED", "DELIVERED"),
    ("RETURNED", "COMPLETED"),
    ("SHIPPED", "CANCELLED"),
    ("DELIVERED", "CANCELLED"),
    ("RETURNED", "CANCELLED"),
    ("CANCELLED", "PLACED"),
    ("CANCELLED", "PAID"),
    ("CANCELLED", "DELIVERED"),
]


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_allowed_status_transition_is_applied(conn, old, new):
    stage(conn, "orders", [order(1, order_status=old, updated_at=ts(1))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status=new, net_amount=1, updated_at=ts(2))])
    refresh(conn)
    assert fetch(conn, "SELECT order_status, net_amount FROM globalcart.fact_orders") == [(new, 1)]
    assert rejects(conn) == []


@pytest.mark.parametrize(("old", "new"), FORBIDDEN)
def test_backward_or_out_of_cancelled_transition_is_rejected_and_the_row_stays(conn, old, new):
    stage(conn, "orders", [order(1, order_status=old, updated_at=ts(1))])
    refresh(conn)
    stage(conn, "orders", [order(1, order_status=new, net_amount=1, updated_at=ts(2))])
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_status, net_amount, updated_at FROM globalcart.fact_orders") == [(old, 95, ts(1))]
    [(source, reason, record)] = rejects(conn)
    assert (source, reason, record["order_status"], record["order_id"]) == (
        "orders",
        "invalid_status_transition",
        new,
        1,
    )
    assert summary["orders"]["rejected"] == 1
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 0


def test_sla_flag_is_computed_from_delivered_and_promised(conn):
    stage(conn, "orders", [order(1), order(2), order(3)])
    stage(
        conn,
        "shipments",
        [
            shipment(1, 1, promised_ts=ts(100), delivered_ts=ts(101), sla_breached_flag=False),  # late, lies
            shipment(2, 2, promised_ts=ts(100), delivered_ts=ts(100), sla_breached_flag=True),  # on time, lies
            shipment(3, 3, promised_ts=ts(100), delivered_ts=None, sla_breached_flag=True),  # not delivered
        ],
    )
    refresh(conn)
    assert fetch(conn, "SELECT shipment_id, sla_breached_flag FROM globalcart.fact_shipments ORDER BY 1") == [
        (1, True),
        (2, False),
        (3, False),
    ]


def test_delivered_date_moving_past_the_promise_breaches_the_sla(conn):
    stage(conn, "orders", [order(1)])
    stage(conn, "shipments", [shipment(1, 1, promised_ts=ts(100), delivered_ts=ts(90), updated_at=ts(90))])
    refresh(conn)
    assert scalar(conn, "SELECT sla_breached_flag FROM globalcart.fact_shipments") is False
    stage(
        conn,
        "shipments",
        [shipment(1, 1, promised_ts=ts(100), delivered_ts=ts(150), shipment_status="DELAYED", updated_at=ts(150))],
    )
    refresh(conn)
    assert scalar(conn, "SELECT sla_breached_flag FROM globalcart.fact_shipments") is True
    assert scalar(conn, "SELECT sla_breached_flag FROM globalcart.audit_fact_shipments") is False


def test_sla_flag_cannot_be_written_by_hand(conn):
    stage(conn, "orders", [order(1)])
    stage(conn, "shipments", [shipment(1, 1, promised_ts=ts(100), delivered_ts=ts(150))])
    refresh(conn)
    with pytest.raises(psycopg.errors.GeneratedAlways, match="generated"):
        conn.execute("UPDATE globalcart.fact_shipments SET sla_breached_flag = false")
