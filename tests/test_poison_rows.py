"""docs/contract.md §2.7 (amended), docs/design.md rule 8: no row can make a call fail or stall other rows.
A row that fails for a reason no check foresaw is isolated and rejected with its SQLSTATE and
message; every other row of every source is applied in the same call; the fast path pays for
isolation only when something fails."""

import secrets

from helpers import (
    SOURCES,
    customer,
    event,
    fetch,
    item,
    order,
    payment,
    product,
    refresh,
    rejects,
    scalar,
    shipment,
    stage,
    staged_count,
)


def _noise(kilobytes: int = 10) -> str:
    """Text that does not compress: too large for a btree index entry (8191 bytes at most)."""
    return secrets.token_hex(kilobytes * 512)


def _isolation_calls(conn, run) -> int:
    """Run ``run()`` in one transaction and count the calls of the isolating path it made."""
    conn.execute("SET track_functions = 'pl'")
    with conn.transaction():
        result = run()
        calls = scalar(
            conn,
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = 'isolate_failing_rows'",
        )
    return result, calls


def test_one_oversized_session_id_no_longer_stops_every_source(conn):
    """The issue's case: a 10 kB session_id used to fail every call, for all eight sources."""
    stage(conn, "customers", [customer(1)])
    stage(conn, "orders", [order(1)])
    stage(conn, "order_items", [item(1, 1)])
    huge = _noise()
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW"), event(huge, "PAGE_VIEW"), event("s2", "PURCHASE")])

    summary = refresh(conn)

    assert summary["status"] == "ok"
    [(source, reason, record)] = rejects(conn)
    assert source == "funnel_events" and record["session_id"] == huge
    assert reason.startswith("row_error: SQLSTATE 54000: index row requires")
    assert (summary["funnel_events"]["inserted"], summary["funnel_events"]["rejected"]) == (2, 1)
    assert fetch(conn, "SELECT session_id FROM globalcart.fact_funnel_events ORDER BY 1") == [("s1",), ("s2",)]
    for table in ("dim_customer", "fact_orders", "fact_order_items"):
        assert scalar(conn, f"SELECT count(*) FROM globalcart.{table}") == 1, table
    assert staged_count(conn) == 0  # not handed back to staging, where it would fail again
    assert refresh(conn)["run_id"] is None  # and the next call has nothing to do


def test_several_failing_rows_in_several_sources_are_isolated_in_one_call(conn):
    # What a DBA may add that no check of the refresh foresees: a unique SKU, an index on
    # channel, a constraint on payment methods.
    conn.execute("CREATE UNIQUE INDEX dim_product_sku_uq ON globalcart.dim_product (sku)")
    conn.execute("CREATE INDEX fact_orders_channel_idx ON globalcart.fact_orders (channel)")
    conn.execute("ALTER TABLE globalcart.fact_payments ADD CONSTRAINT no_barter CHECK (payment_method <> 'barter')")
    stage(conn, "products", [product(1), product(2, sku="SKU-1"), product(3)])
    stage(conn, "orders", [order(i) for i in range(1, 41)] + [order(41, channel=_noise()), order(42, channel=_noise())])
    stage(conn, "order_items", [item(i, i) for i in range(1, 41)])
    stage(conn, "payments", [payment(i, i, payment_method="barter" if i in (7, 30) else "card") for i in range(1, 41)])
    stage(conn, "shipments", [shipment(1, 1)])
    stage(conn, "funnel_events", [event(f"s{i}", "PAGE_VIEW") for i in range(20)] + [event(_noise(), "PURCHASE")])

    summary, isolations = _isolation_calls(conn, lambda: refresh(conn))

    assert summary["status"] == "ok" and isolations == 4  # products, orders, payments, funnel_events
    got = {(s, r.split(":")[0], r.split(":")[1].strip()) for s, r, _ in rejects(conn)}
    assert got == {
        ("products", "row_error", "SQLSTATE 23505"),
        ("orders", "row_error", "SQLSTATE 54000"),
        ("payments", "row_error", "SQLSTATE 23514"),
        ("funnel_events", "row_error", "SQLSTATE 54000"),
    }
    keys = {"products": "product_id", "orders": "order_id", "payments": "payment_id", "funnel_events": "event_id"}
    rejected = {s: sorted(str(rec[keys[s]]) for src, _, rec in rejects(conn) if src == s) for s in keys}
    assert rejected["products"] == ["2"] and rejected["orders"] == ["41", "42"]
    assert rejected["payments"] == ["30", "7"] and len(rejected["funnel_events"]) == 1
    messages = {r for _, r, _ in rejects(conn)}
    assert any('duplicate key value violates unique constraint "dim_product_sku_uq"' in m for m in messages)
    assert any('violates check constraint "no_barter"' in m for m in messages)

    expected = {"products": 2, "orders": 40, "order_items": 40, "payments": 38, "shipments": 1, "funnel_events": 20}
    for source, applied in expected.items():
        assert summary[source]["inserted"] == applied, source
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 40
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_payments") == 38
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_funnel_events") == 20
    for source in SOURCES:
        counts = summary[source]
        assert counts["claimed"] == sum(counts[c] for c in ("inserted", "updated", "stale", "duplicate",
                                                             "rejected", "deferred")), source  # fmt: skip
    assert fetch(conn, "SELECT status, rows_rejected FROM globalcart.etl_runs") == [("ok", 6)]
    assert staged_count(conn) == 0


def test_isolation_keeps_newest_wins_and_the_watermark(conn):
    conn.execute("CREATE INDEX fact_orders_channel_idx ON globalcart.fact_orders (channel)")
    stage(conn, "orders", [order(1, updated_at="2026-01-01 12:00+00")])
    refresh(conn)
    stage(
        conn,
        "orders",
        [
            order(1, order_status="PAID", updated_at="2026-01-01 13:00+00"),
            order(2, channel=_noise()),
            order(1, order_status="PLACED", updated_at="2026-01-01 12:30+00"),  # older: stale, in any part
            order(3, updated_at="2026-01-01 14:00+00"),
        ],
    )
    summary = refresh(conn)
    assert fetch(conn, "SELECT order_id, order_status FROM globalcart.fact_orders ORDER BY 1") == [
        (1, "PAID"),
        (3, "PLACED"),
    ]
    assert (summary["orders"]["updated"], summary["orders"]["inserted"], summary["orders"]["rejected"]) == (1, 1, 1)
    assert summary["orders"]["stale"] == 1
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 1
    assert str(scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'")) == (
        "2026-01-01 14:00:00+00:00"
    )


def test_children_of_an_isolated_order_batch_still_apply_or_wait(conn):
    conn.execute("CREATE INDEX fact_orders_channel_idx ON globalcart.fact_orders (channel)")
    stage(conn, "orders", [order(1), order(2, channel=_noise())])
    stage(conn, "order_items", [item(1, 1), item(2, 2)])
    summary = refresh(conn)
    assert summary["order_items"]["inserted"] == 1 and summary["order_items"]["deferred"] == 1
    assert fetch(conn, "SELECT order_id FROM globalcart.stg_order_items") == [(2,)]  # waits for a good order 2


def test_a_clean_batch_never_takes_the_isolating_path(conn):
    stage(conn, "orders", [order(i) for i in range(1, 101)])
    stage(conn, "funnel_events", [event(f"s{i}", "PAGE_VIEW") for i in range(50)])
    summary, isolations = _isolation_calls(conn, lambda: refresh(conn))
    assert summary["orders"]["inserted"] == 100 and isolations == 0


def test_an_error_the_rows_cannot_cause_is_not_isolated_but_fails_the_call(conn):
    """A missing privilege is not a bad row: rejecting row after row would quarantine the batch."""
    stage(conn, "orders", [order(1), order(2)])
    conn.execute("REVOKE INSERT ON globalcart.fact_orders FROM globalcart_owner")  # the refresh runs as it
    try:
        summary = refresh(conn)
    finally:
        conn.execute("GRANT INSERT ON globalcart.fact_orders TO globalcart_owner")
    assert summary["status"] == "failed" and summary["error"]["sqlstate"] == "42501"
    assert rejects(conn) == [] and scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 2
