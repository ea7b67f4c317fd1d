"""Deletes (migration 0009, docs/cdc.md): a tombstone staged for a
row — deleted = true, its last version with a later updated_at — marks the fact or dimension row
deleted (deleted_at, audited) instead of removing it; the KPIs ignore deleted rows; a later
version of the key brings it back; an older one stays stale. Staged by hand here, as any producer
may; tests/test_cdc.py stages them from a real source through logical replication."""

from datetime import timedelta

from helpers import customer, fetch, item, order, payment, refresh, rejects, return_, scalar, shipment, stage, ts
from test_kpi_summaries import assert_same_kpis, assert_summaries_equal_a_rebuild, expected_kpis, kpi_values


def tombstone(row: dict) -> dict:
    """The tombstone a source sends for a row it deleted: the row, deleted, a microsecond later."""
    return {**row, "deleted": True, "updated_at": row["updated_at"] + timedelta(microseconds=1)}


def test_a_deleted_order_and_its_children_are_marked_not_removed_and_the_kpis_ignore_them(conn):
    o1, o2 = order(1, order_status="DELIVERED", updated_at=ts(1)), order(2, updated_at=ts(1))
    i1, p1 = item(10, 1, updated_at=ts(1)), payment(20, 1, updated_at=ts(1))
    s1 = shipment(30, 1, delivered_ts=ts(0), updated_at=ts(1))
    stage(conn, "orders", [o1, o2])
    stage(conn, "order_items", [i1, item(11, 2, updated_at=ts(1))])
    stage(conn, "payments", [p1])
    stage(conn, "shipments", [s1])
    refresh(conn)
    before = kpi_values(conn)
    assert before["orders"] == 2 and before["units"] > 0
    stage(conn, "orders", [tombstone(o1)])
    stage(conn, "order_items", [tombstone(i1)])
    stage(conn, "payments", [tombstone(p1)])
    stage(conn, "shipments", [tombstone(s1)])
    summary = refresh(conn)
    assert summary["status"] == "ok" and summary["orders"]["updated"] == 1, summary
    assert fetch(conn, "SELECT order_id, deleted_at FROM globalcart.fact_orders ORDER BY 1") == [
        (1, o1["updated_at"] + timedelta(microseconds=1)), (2, None)]  # fmt: skip
    for table in ("fact_order_items", "fact_payments", "fact_shipments"):
        assert (
            scalar(conn, f"SELECT count(*) FROM globalcart.{table} WHERE order_id = 1 AND deleted_at IS NOT NULL") == 1
        )
    # audited: the version before the delete, by the run that deleted it
    assert fetch(conn, "SELECT audit_run_id, order_status, deleted_at FROM globalcart.audit_fact_orders") == [
        (summary["run_id"], "DELIVERED", None)]  # fmt: skip
    after = kpi_values(conn)
    assert after["orders"] == 1 and after["units"] == before["units"] - i1["quantity"]
    assert after["payment_failure_rate"] is None and after["sla_breach_rate"] is None  # its only payment, shipment
    assert_same_kpis(after, expected_kpis(conn), "after the delete")
    assert_summaries_equal_a_rebuild(conn, "after the delete")


def test_a_later_version_brings_a_deleted_row_back_and_an_older_one_is_stale(conn):
    o1 = order(1, order_status="DELIVERED", updated_at=ts(1))
    stage(conn, "orders", [o1])
    refresh(conn)
    stage(conn, "orders", [tombstone(o1)])
    refresh(conn)
    # an older version after the delete changes nothing
    stage(conn, "orders", [order(1, order_status="SHIPPED", updated_at=ts(0))])
    assert refresh(conn)["orders"]["stale"] == 1
    assert scalar(conn, "SELECT deleted_at IS NOT NULL FROM globalcart.fact_orders") is True
    # re-inserted in the source: a new version, whatever its status (PLACED after DELIVERED)
    stage(conn, "orders", [order(1, order_status="PLACED", updated_at=ts(5))])
    summary = refresh(conn)
    assert not rejects(conn), rejects(conn)
    assert fetch(conn, "SELECT order_status, deleted_at FROM globalcart.fact_orders") == [("PLACED", None)]
    assert summary["orders"]["updated"] == 1
    assert kpi_values(conn)["orders"] == 1
    assert_summaries_equal_a_rebuild(conn, "after the re-insert")


def test_a_delete_and_its_row_in_one_batch_and_a_tombstone_of_a_derived_state(conn):
    # inserted and deleted before a refresh saw it: stored deleted (a late older version stays stale)
    o1 = order(1, updated_at=ts(1))
    stage(conn, "orders", [{**o1, "deleted": False}, tombstone(o1)])
    refresh(conn)
    assert scalar(conn, "SELECT deleted_at IS NOT NULL FROM globalcart.fact_orders WHERE order_id = 1") is True
    # an order the warehouse turned RETURNED is deleted with the source's last status (DELIVERED):
    # not a backward transition, a delete
    o2 = order(2, order_status="DELIVERED", updated_at=ts(1))
    stage(conn, "orders", [o2])
    stage(conn, "returns", [return_(40, 2, updated_at=ts(2))])
    refresh(conn)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 2") == "RETURNED"
    stage(conn, "orders", [{**o2, "deleted": True, "updated_at": ts(3)}])
    refresh(conn)
    assert not rejects(conn), rejects(conn)
    assert scalar(conn, "SELECT deleted_at FROM globalcart.fact_orders WHERE order_id = 2") == ts(3)
    assert kpi_values(conn)["orders"] == 0
    assert_same_kpis(kpi_values(conn), expected_kpis(conn), "after deleting a returned order")


def test_a_deleted_return_no_longer_counts_and_a_deleted_customer_is_marked(conn):
    stage(conn, "customers", [c := customer(1, updated_at=ts(1))])
    stage(conn, "orders", [order(1, customer_id=1, order_status="DELIVERED", updated_at=ts(1))])
    stage(conn, "returns", [r := return_(40, 1, return_status="REFUNDED", refund_amount=12, updated_at=ts(2))])
    refresh(conn)
    assert kpi_values(conn)["refunds_usd"] == 12
    stage(conn, "returns", [tombstone(r)])
    stage(conn, "customers", [tombstone(c)])
    refresh(conn)
    assert kpi_values(conn)["refunds_usd"] == 0
    assert scalar(conn, "SELECT deleted_at IS NOT NULL FROM globalcart.dim_customer WHERE customer_id = 1") is True
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_dim_customer WHERE deleted_at IS NULL") == 1
    assert_same_kpis(kpi_values(conn), expected_kpis(conn), "after deleting a refund")
    assert_summaries_equal_a_rebuild(conn, "after deleting a refund")
