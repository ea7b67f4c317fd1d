"""The refresh's short paths (docs/refresh.md):

- the bulk path: a key above every stored key cannot be stored, so it is looked up nowhere — a batch
  that mixes such keys with stored ones gives exactly the warehouse, audit rows, rejects, KPI state
  and summaries of the ordinary path, where every key is looked up (``globalcart.bulk_path = off``);
- the order directory (``kpi_order_state``): a lookup of a stored order, or of its children, reads the
  order's one monthly partition, never one per month kept (checked on the plans, by auto_explain);
- an order written outside the refresh, which the directory does not know, is still found (and moved,
  never duplicated)."""

import json

import psycopg
from helpers import fetch, item, order, payment, refresh, return_, scalar, shipment, stage, table_digest, ts
from test_kpi_summaries import assert_summaries_equal_a_rebuild

MONTH = 60 * 24 * 31  # minutes: a version this much later lies in another month

# what differs between two applications of the same rows: ids, times and runs of the bookkeeping
BOOKKEEPING = ("loaded_run_id", "audit_id", "audited_at", "audit_run_id", "audited_by")
TABLES = ["fact_orders", "fact_order_items", "fact_payments", "fact_shipments", "fact_returns", "dim_customer",
          "dim_product", "audit_fact_orders", "audit_fact_order_items", "audit_fact_payments", "audit_fact_shipments",
          "audit_fact_returns", "kpi_order_state", "kpi_order_summary"]  # fmt: skip


def _history(conn: psycopg.Connection) -> None:
    """Orders in four months with items, payments, shipments and returns, applied by the refresh."""
    ids = [i for i in range(1, 41) if i != 33]  # (33: a gap, below the greatest stored id)
    stage(conn, "orders", [order(i, order_ts=ts(-MONTH * (i % 4)), order_status="DELIVERED", updated_at=ts(1))
                           for i in ids])  # fmt: skip
    stage(conn, "order_items", [item(100 + i, i, updated_at=ts(1)) for i in ids])
    stage(conn, "payments", [payment(200 + i, i, updated_at=ts(1)) for i in ids])
    stage(conn, "shipments", [shipment(300 + i, i, updated_at=ts(1)) for i in ids])
    stage(conn, "returns", [return_(400 + i, i, return_status="REQUESTED", updated_at=ts(1)) for i in ids[::5]])
    assert refresh(conn)["status"] == "ok"


def _mixed_batch(conn: psycopg.Connection) -> None:
    """New keys above every stored one, new keys below it, and every kind of change to stored keys."""
    stage(conn, "orders", [
        order(7, order_ts=ts(-MONTH * 3), order_status="COMPLETED", updated_at=ts(5)),   # status change
        order(2, order_ts=ts(MONTH), order_status="DELIVERED", updated_at=ts(5)),        # moved to another month
        order(3, order_status="PLACED", updated_at=ts(5)),                               # backwards: rejected
        order(4, order_ts=ts(-MONTH * 3), order_status="CANCELLED", updated_at=ts(0)),   # stale
        order(5, order_ts=ts(-MONTH), order_status="DELIVERED", updated_at=ts(5), deleted=True),  # tombstone
        order(33, order_ts=ts(-5), updated_at=ts(5)),                                    # new, below the greatest id
        order(1000, order_ts=ts(-MONTH * 2), updated_at=ts(5)),                          # above every stored key
        order(1000, order_ts=ts(-MONTH * 2), order_status="PAID", updated_at=ts(6)),     # newest wins in the batch
        order(1001, order_ts=ts(-5), currency="XXX", updated_at=ts(5)),                  # bad: quarantined
    ])  # fmt: skip
    stage(conn, "order_items", [
        item(102, 2, quantity=5, updated_at=ts(5)),        # a stored item of the moved order
        item(103, 8, updated_at=ts(5)),                    # a stored key under another order: rejected
        item(150, 6, updated_at=ts(5)),                    # a new item of a stored order, below the max key
        item(2000, 1000, quantity=3, updated_at=ts(5)),    # new keys of a new order
        item(2001, 1000, quantity=1, updated_at=ts(5)),
        item(2002, 33, quantity=0, updated_at=ts(5)),      # bad: quarantined
        item(2003, 99999, updated_at=ts(5)),               # its order has not arrived: deferred
    ])  # fmt: skip
    stage(conn, "payments", [payment(2100, 1000, payment_status="FAILED", updated_at=ts(5)),
                             payment(206, 6, payment_status="REFUNDED", updated_at=ts(5))])  # fmt: skip
    stage(conn, "shipments", [shipment(2200, 1000, updated_at=ts(5)),
                              shipment(308, 8, delivered_ts=ts(60 * 24 * 9), updated_at=ts(5))])  # fmt: skip
    stage(conn, "returns", [return_(2300, 1000, updated_at=ts(5)),
                            return_(411, 11, return_status="REFUNDED", updated_at=ts(5))])  # fmt: skip


def _state(conn: psycopg.Connection, summary: dict) -> dict:
    state = {table: table_digest(conn, table, BOOKKEEPING) for table in TABLES}
    state["watermarks"] = table_digest(conn, "etl_watermarks", ("updated_at", "last_run_id"))
    state["rejects"] = fetch(conn, "SELECT source_name, reason, (record - 'stg_id' - 'ingested_at')::text "
                                   "FROM globalcart.etl_rejects ORDER BY 1, 2, 3")  # fmt: skip
    state["staged"] = fetch(conn, "SELECT order_item_id, deferrals FROM globalcart.stg_order_items ORDER BY 1")
    state["counts"] = {s: {k: v for k, v in summary[s].items() if k != "backlog"} for s in summary["sources"]}
    return state


def test_a_batch_mixing_new_and_stored_keys_gives_what_the_ordinary_path_gives(conn):
    _history(conn)
    with conn.transaction():  # the ordinary path: every key looked up; then undone
        conn.execute("SET LOCAL globalcart.bulk_path = off")
        _mixed_batch(conn)
        ordinary = _state(conn, refresh(conn))
        raise psycopg.Rollback()
    _mixed_batch(conn)
    bulk = _state(conn, refresh(conn))
    for name in ordinary:
        assert bulk[name] == ordinary[name], name
    # and the case itself did what it says
    assert (bulk["counts"]["orders"]["inserted"], bulk["counts"]["orders"]["rejected"]) == (2, 2)
    assert ("orders", "invalid_status_transition") in {(s, r) for s, r, _ in bulk["rejects"]}
    assert ("order_items", "order_id_changed") in {(s, r) for s, r, _ in bulk["rejects"]}
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id = 2") == 1
    assert_summaries_equal_a_rebuild(conn, "after the mixed batch")


def test_a_seed_through_the_bulk_path_equals_a_rebuild(conn):
    stage(conn, "orders", [order(i, order_ts=ts(-MONTH * (i % 3)), order_status="DELIVERED") for i in range(1, 301)])
    stage(conn, "order_items", [item(i, i, quantity=i % 4 + 1) for i in range(1, 301)])
    stage(conn, "payments", [payment(i, i, payment_status="FAILED" if i % 7 == 0 else "CAPTURED")
                             for i in range(1, 301)])  # fmt: skip
    stage(conn, "returns", [return_(i, i, return_status="REFUNDED") for i in range(1, 301, 9)])
    summary = refresh(conn)
    assert summary["orders"]["inserted"] == 300 and summary["derived"]["orders_returned"] == 34
    assert_summaries_equal_a_rebuild(conn, "after a seed")


def _plans(conn: psycopg.Connection) -> list[dict]:
    """Run a refresh with auto_explain reporting every statement's plan (with its actual loops) to
    this session, and return the plans."""
    plans: list[dict] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        if "Query Text" in text:
            plans.append(json.loads(text[text.index("{") :]))

    conn.add_notice_handler(keep)
    conn.execute("LOAD 'auto_explain'")
    for setting, value in {"log_min_duration": "0", "log_analyze": "on", "log_nested_statements": "on",
                           "log_format": "json", "log_level": "notice", "log_timing": "off"}.items():  # fmt: skip
        conn.execute(f"SET auto_explain.{setting} = {value}")
    try:
        assert refresh(conn)["status"] == "ok"
    finally:
        conn.execute("SET auto_explain.log_min_duration = -1")
        conn.remove_notice_handler(keep)
    return plans


def _scans(node: dict) -> list[tuple[str, int]]:
    """(relation, actual loops) of every scan under a plan node."""
    found = []
    if "Relation Name" in node and node.get("Node Type", "").endswith("Scan"):
        found.append((node["Relation Name"], node.get("Actual Loops", 0)))
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def test_a_key_lookup_on_a_multi_month_warehouse_reads_one_partition(conn):
    _history(conn)
    month = scalar(conn, "SELECT to_char(order_ts AT TIME ZONE 'UTC', 'YYYY_MM') FROM globalcart.fact_orders "
                         "WHERE order_id = 4")  # fmt: skip
    assert scalar(conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'globalcart.fact_orders'::regclass") >= 5
    # three stored orders of one month (4, 8, 12), newer versions with children, a late return
    stage(conn, "orders", [order(i, order_ts=ts(-MONTH * 0), order_status="COMPLETED", updated_at=ts(9))
                           for i in (4, 8, 12)])  # fmt: skip
    stage(conn, "order_items", [item(100 + i, i, quantity=7, updated_at=ts(9)) for i in (4, 8, 12)])
    stage(conn, "payments", [payment(900 + i, i, updated_at=ts(9)) for i in (4, 8, 12)])
    stage(conn, "returns", [return_(900 + i, i, return_status="REFUNDED", updated_at=ts(9)) for i in (4, 8, 12)])
    plans = _plans(conn)
    assert plans, "auto_explain reported no plan"
    per_key = {}
    for plan in plans:
        for relation, loops in _scans(plan["Plan"]):
            if relation.startswith("fact_") and "_p20" in relation:
                per_key[relation] = max(per_key.get(relation, 0), loops)
    # a partition of another month may be read once a batch (the greatest stored key), never once a key
    others = {r: n for r, n in per_key.items() if not r.endswith(month) and n > 1}
    assert others == {}, f"read once per key outside the orders' month {month}: {others}"
    assert any(r.endswith(month) and n >= 3 for r, n in per_key.items()), per_key


def test_the_kpi_rules_are_inlined(conn):
    """The per-order rule costs what its expressions cost: no function call a row."""
    plan = fetch(conn, "EXPLAIN (FORMAT JSON, VERBOSE) SELECT sum(c.orders) FROM globalcart.kpi_order_state s "
                       "CROSS JOIN LATERAL globalcart.kpi_order_contribution(s.order_status, s.deleted, "
                       "s.gross_amount, s.net_amount, s.units, s.refund_amount, s.delivered_shipments, "
                       "s.breached_shipments, s.payments, s.failed_payments) AS c")[0][0]  # fmt: skip
    assert "Function Scan" not in json.dumps(plan)


def test_an_order_written_outside_the_refresh_is_found_and_moved_not_duplicated(conn):
    _history(conn)
    conn.execute(  # not through the refresh: the directory does not know it; its id lies below the max
        "INSERT INTO globalcart.fact_orders (order_id, customer_id, order_ts, order_status, channel, country_code, "
        "currency, gross_amount, discount_amount, shipping_amount, net_amount, updated_at) "
        "VALUES (20000, 1, %s, 'PLACED', 'web', 'US', 'USD', 10, 0, 0, 10, %s)", (ts(-MONTH), ts(1)))  # fmt: skip
    stage(conn, "orders", [order(30000, updated_at=ts(1))])
    refresh(conn)
    stage(conn, "orders", [order(20000, order_ts=ts(0), order_status="PAID", updated_at=ts(2))])
    stage(conn, "order_items", [item(20001, 20000, updated_at=ts(2))])
    summary = refresh(conn)
    assert (summary["orders"]["updated"], summary["orders"]["inserted"]) == (1, 0)
    assert fetch(conn, "SELECT order_ts, order_status FROM globalcart.fact_orders WHERE order_id = 20000") == [
        (ts(0), "PAID")
    ]
    assert fetch(conn, "SELECT order_ts FROM globalcart.fact_order_items WHERE order_id = 20000") == [(ts(0),)]
    assert scalar(conn, "SELECT order_ts FROM globalcart.kpi_order_state WHERE order_id = 20000") == ts(0)


def test_a_late_child_of_an_old_order_takes_its_order_ts_from_the_directory(conn):
    _history(conn)
    stage(conn, "shipments", [shipment(3999, 3, updated_at=ts(2))])
    assert refresh(conn)["shipments"]["inserted"] == 1
    same = (
        "SELECT s.order_ts = o.order_ts FROM globalcart.fact_shipments s JOIN globalcart.fact_orders o USING (order_id)"
    )
    assert fetch(conn, same + " WHERE s.shipment_id = 3999") == [(True,)]
    assert_summaries_equal_a_rebuild(conn, "after a late shipment")


def test_bulk_path_setting_only_slows_the_lookups(conn):
    """The diagnostic switch is a session's own: it changes no result (above) and no other session."""
    conn.execute("SET globalcart.bulk_path = off")
    assert scalar(conn, "SELECT globalcart.bulk_bound(5)") == 9223372036854775807
    conn.execute("RESET globalcart.bulk_path")
    assert scalar(conn, "SELECT globalcart.bulk_bound(5)") == 5
    assert scalar(conn, "SELECT globalcart.bulk_bound(NULL)") is None
