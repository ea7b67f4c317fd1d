"""docs/contract.md §7, history: loaded_run_id on every version, deletes audited, <table>_as_of(at)
and kpi_values_as_of(at) equal to what the warehouse held (and a snapshot stored) then,
order_timeline(order_id), revert_run(run_id) — of an insert-only run, an update run, a run that
turned orders RETURNED, a run refused because later runs changed its rows, a revert of a revert —
and the commands history, as-of and revert."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from helpers import (
    customer,
    event,
    fetch,
    installed_by_release,
    item,
    order,
    partition_of,
    payment,
    refresh,
    return_,
    run_cli,
    scalar,
    shipment,
    stage,
    table_digest,
    ts,
)
from test_kpi_summaries import assert_summaries_equal_a_rebuild

APRIL = datetime(2026, 4, 14, 9, tzinfo=UTC)


def history_tables(conn) -> list[str]:
    return [r[0] for r in fetch(conn, "SELECT table_name FROM globalcart.history_tables()")]


def contents(conn) -> dict[str, list[tuple]]:
    """Every table with history, row by row, without loaded_run_id (a revert writes the old
    versions back as a run of its own)."""
    return {
        t: fetch(conn, f"SELECT (to_jsonb(x) - 'loaded_run_id')::text FROM globalcart.{t} x ORDER BY 1")
        for t in history_tables(conn)
    }


def digests(conn) -> dict[str, list[tuple]]:
    return {t: table_digest(conn, t) for t in history_tables(conn)}


def as_of(conn, at: datetime) -> dict[str, list[tuple]]:
    return {
        t: fetch(conn, f"SELECT x::text FROM globalcart.{t}_as_of(%s) x ORDER BY 1", at) for t in history_tables(conn)
    }


def kpis(conn) -> dict:
    return dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values()"))


def finished(conn, run_id: int) -> datetime:
    return scalar(conn, "SELECT finished_at FROM globalcart.etl_runs WHERE run_id = %s", run_id)


def run(conn, **rows: list[dict]) -> int:
    """Stage rows (source=[rows]) and refresh them: the run's id."""
    for source, batch in rows.items():
        stage(conn, source.rstrip("_"), batch)
    summary = refresh(conn)
    assert summary["status"] == "ok" and summary["totals"]["rejected"] == 0, summary
    return summary["run_id"]


def revert(conn, run_id: int) -> dict:
    return scalar(conn, "SELECT globalcart.revert_run(%s)", run_id)


def base(conn) -> int:
    """Run 1: two customers, orders 1 (DELIVERED) and 2 (PAID) with children, a session."""
    return run(conn, customers=[customer(1), customer(2)],
               orders=[order(1, order_status="DELIVERED"), order(2, order_status="PAID", customer_id=2)],
               order_items=[item(10, 1), item(20, 2, quantity=1)],
               payments=[payment(30, 1), payment(31, 2)],
               shipments=[shipment(40, 1, delivered_ts=ts(60 * 30), shipment_status="DELIVERED")],
               funnel_events=[event("s1", "ADD_TO_CART", cart_value_usd=Decimal("95"))])  # fmt: skip


# -- loaded_run_id and audited deletes ----------------------------------------------------------


def test_every_version_records_the_run_that_wrote_it(conn):
    r1 = base(conn)
    assert fetch(conn, "SELECT DISTINCT loaded_run_id FROM globalcart.fact_orders") == [(r1,)]
    for table in history_tables(conn):
        if table not in ("dim_currency", "dim_date"):  # (written by migrate, not by a run)
            assert scalar(conn, f"SELECT count(*) FROM globalcart.{table} WHERE loaded_run_id IS DISTINCT FROM %s",
                          r1) == 0, table  # fmt: skip
    r2 = run(conn, orders=[order(1, order_status="COMPLETED", updated_at=ts(5))], products=[])
    assert fetch(conn, "SELECT order_id, loaded_run_id FROM globalcart.fact_orders ORDER BY 1") == [(1, r2), (2, r1)]
    # the audit copy keeps the old version's writer, and says who replaced it
    assert fetch(conn, "SELECT order_status, loaded_run_id, audit_run_id, audit_action "
                       "FROM globalcart.audit_fact_orders"
                 ) == [("DELIVERED", r1, r2, "UPDATE")]  # fmt: skip
    # outside a run: NULL
    conn.execute("UPDATE globalcart.dim_customer SET segment = 'VIP' WHERE customer_id = 2")
    assert scalar(conn, "SELECT loaded_run_id FROM globalcart.dim_customer WHERE customer_id = 2") is None
    # a stale replay writes nothing
    run(conn, orders=[order(1, order_status="COMPLETED", updated_at=ts(5))])
    assert scalar(conn, "SELECT loaded_run_id FROM globalcart.fact_orders WHERE order_id = 1") == r2


def test_deletes_are_audited_and_a_move_is_one_update(conn):
    r1 = base(conn)
    conn.execute("DELETE FROM globalcart.fact_payments WHERE payment_id = 31")
    assert fetch(conn, "SELECT payment_id, order_id, amount, loaded_run_id, audit_run_id, audit_action "
                       "FROM globalcart.audit_fact_payments"
                 ) == [(31, 2, Decimal("95"), r1, None, "DELETE")]  # fmt: skip
    # an order moved to another month (an UPDATE across partitions) is audited once, as an update
    r2 = run(conn, orders=[order(2, order_status="PAID", customer_id=2, order_ts=APRIL, updated_at=ts(5))])
    assert fetch(conn, "SELECT audit_action, audit_run_id, order_ts FROM globalcart.audit_fact_orders") == [
        ("UPDATE", r2, ts(0))
    ]
    assert fetch(conn, "SELECT audit_action, count(*) FROM globalcart.audit_fact_order_items GROUP BY 1") == [
        ("UPDATE", 1)
    ]


# -- as of ------------------------------------------------------------------------------------------


def test_as_of_at_several_instants_equals_what_the_warehouse_held_and_what_snapshots_stored(conn):
    before_first = scalar(conn, "SELECT clock_timestamp()")
    r1 = base(conn)
    held = {r1: digests(conn)}
    snapshots = {r1: scalar(conn, "SELECT globalcart.snapshot_kpis('after run 1')")}
    r2 = run(conn, orders=[order(2, order_status="SHIPPED", customer_id=2, updated_at=ts(5)), order(3, order_ts=APRIL)],
             order_items=[item(30, 3)], shipments=[shipment(41, 2)],
             customers=[customer(1, segment="VIP", updated_at=ts(5))],
             funnel_events=[event("s1", "PURCHASE", event_ts=ts(3)),
                            event("s2", "PAGE_VIEW", channel="app")])  # fmt: skip
    held[r2] = digests(conn)
    snapshots[r2] = scalar(conn, "SELECT globalcart.snapshot_kpis('after run 2')")
    r3 = run(conn, returns=[return_(50, 1, return_status="REFUNDED")],
             payments=[payment(32, 3, payment_status="FAILED")])  # fmt: skip
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "RETURNED"
    held[r3] = digests(conn)
    assert dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values_as_of(now())")) == kpis(conn)
    # a change outside any run counts from its own time (the summaries do not know of it)
    conn.execute("DELETE FROM globalcart.fact_payments WHERE payment_id = 32")

    empty = as_of(conn, before_first)
    assert {t: rows for t, rows in empty.items() if rows and t not in ("dim_currency", "dim_date")} == {}
    assert [v for _, v in fetch(conn, "SELECT kpi_order, kpi_value FROM globalcart.kpi_values_as_of(%s) "
                                      "WHERE kpi_order IN (1, 2, 5) ORDER BY 1", before_first)
            ] == [0, 0, 0]  # fmt: skip
    for r in (r1, r2, r3):
        assert as_of(conn, finished(conn, r)) == held[r], f"at the end of run {r}"
    between = finished(conn, r1) + (finished(conn, r2) - finished(conn, r1)) / 2
    assert as_of(conn, between) == held[r1]
    assert as_of(conn, finished(conn, r2) - timedelta(microseconds=1)) == held[r1]
    assert as_of(conn, datetime.now(UTC) + timedelta(days=1)) == digests(conn)
    assert as_of(conn, finished(conn, r3))["fact_payments"] != table_digest(conn, "fact_payments")

    for snapshot_id in snapshots.values():
        taken_at = scalar(
            conn, "SELECT min(taken_at) FROM globalcart.kpi_snapshots WHERE snapshot_id = %s", snapshot_id
        )
        stored = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s",
                            snapshot_id))  # fmt: skip
        assert dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values_as_of(%s)", taken_at)) == stored


def test_a_one_order_as_of_read_is_an_index_probe(conn):
    base(conn)
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in fetch(conn, "EXPLAIN SELECT * FROM globalcart.fact_orders_as_of(now()) "
                                               "WHERE order_id = 1"))  # fmt: skip
    assert "Function Scan" not in plan, plan  # inlined: the order_id condition reaches the tables
    assert "Index Cond: (order_id = 1)" in plan and "audit_fact_orders" in plan, plan
    plan = "\n".join(r[0] for r in fetch(conn, "EXPLAIN SELECT * FROM globalcart.dim_customer_as_of(now()) "
                                               "WHERE customer_id = 1"))  # fmt: skip
    assert "Function Scan" not in plan and "Index Scan on audit_dim_customer" in plan.replace("Bitmap ", ""), plan


# -- timeline ------------------------------------------------------------------------------------------


def test_the_timeline_of_an_order_touched_by_five_runs(conn):
    runs = [
        run(conn, orders=[order(7)], order_items=[item(70, 7)]),
        run(conn, orders=[order(7, order_status="PAID", updated_at=ts(1))], payments=[payment(71, 7)]),
        run(conn, orders=[order(7, order_status="SHIPPED", updated_at=ts(60))], shipments=[shipment(72, 7)]),
        run(conn, orders=[order(7, order_status="DELIVERED", updated_at=ts(60 * 30))],
            shipments=[shipment(72, 7, delivered_ts=ts(60 * 30), shipment_status="DELIVERED", updated_at=ts(60 * 30))]),
        run(conn, returns=[return_(73, 7)]),
    ]  # fmt: skip
    run(conn, orders=[order(8)])  # another order: not in the timeline
    rows = fetch(conn, "SELECT table_name, key, valid_from, valid_to, run_id, ended, version "
                       "FROM globalcart.order_timeline(7)")  # fmt: skip
    orders = [r for r in rows if r[0] == "fact_orders"]
    assert [(r[4], r[6]["order_status"], r[5]) for r in orders] == [
        (runs[0], "PLACED", "updated"), (runs[1], "PAID", "updated"), (runs[2], "SHIPPED", "updated"),
        (runs[3], "DELIVERED", "updated"), (runs[4], "RETURNED", None)]  # fmt: skip
    ends = [finished(conn, r) for r in runs]
    assert [(r[2], r[3]) for r in orders] == [(ends[0], ends[1]), (ends[1], ends[2]), (ends[2], ends[3]),
                                              (ends[3], ends[4]), (ends[4], None)]  # fmt: skip
    assert all(r[1] == {"order_id": 7} for r in orders)
    columns = {r[0] for r in fetch(conn, "SELECT attname FROM pg_attribute WHERE attnum > 0 AND NOT attisdropped "
                                         "AND attrelid = 'globalcart.fact_orders'::regclass")}  # fmt: skip
    assert all(set(r[6]) == columns - {"loaded_run_id"} for r in orders)  # the version: the row's columns
    assert {(r[0], tuple(r[1].values()), r[4]) for r in rows if r[0] != "fact_orders"} == {
        ("fact_order_items", (7, 70), runs[0]), ("fact_payments", (7, 71), runs[1]),
        ("fact_shipments", (7, 72), runs[2]), ("fact_shipments", (7, 72), runs[3]),
        ("fact_returns", (7, 73), runs[4])}  # fmt: skip
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)  # oldest first
    assert fetch(conn, "SELECT * FROM globalcart.order_timeline(999)") == []


# -- revert ----------------------------------------------------------------------------------------------


def _assert_reverted(conn, before_contents: dict, before_kpis: dict, where: str) -> None:
    assert contents(conn) == before_contents, where
    assert kpis(conn) == before_kpis, where
    assert_summaries_equal_a_rebuild(conn, where)


def test_revert_of_an_insert_only_run(conn):
    base(conn)
    before, before_kpis = contents(conn), kpis(conn)
    r2 = run(conn, orders=[order(5, customer_id=99, order_ts=APRIL), order(6)],
             order_items=[item(50, 5, product_id=77), item(60, 6)], payments=[payment(51, 5)],
             funnel_events=[event("s9", "PURCHASE", channel="app")])  # fmt: skip
    assert scalar(conn, "SELECT count(*) FROM globalcart.dim_customer WHERE is_inferred") == 1
    watermarks = fetch(conn, "SELECT * FROM globalcart.etl_watermarks ORDER BY 1")
    summary = revert(conn, r2)
    assert summary["status"] == "ok" and summary["reverted_run_id"] == r2
    assert summary["tables"]["fact_orders"] == {"deleted": 2, "restored": 0, "reinserted": 0}
    assert summary["tables"]["dim_customer"]["deleted"] == 1 and summary["tables"]["dim_product"]["deleted"] == 1
    _assert_reverted(conn, before, before_kpis, "insert-only run reverted")
    # nothing is lost: the deleted rows are in the audit tables, stamped with the revert's run
    assert fetch(conn, "SELECT order_id, audit_run_id, audit_action, loaded_run_id FROM globalcart.audit_fact_orders "
                       "ORDER BY 1") == [(5, summary["run_id"], "DELETE", r2),
                                         (6, summary["run_id"], "DELETE", r2)]  # fmt: skip
    assert fetch(conn, "SELECT * FROM globalcart.etl_watermarks ORDER BY 1") == watermarks  # never backwards
    assert fetch(conn, "SELECT status, reverts_run_id, stats -> 'tables' = %s::jsonb FROM globalcart.etl_runs "
                       "WHERE run_id = %s", psycopg.types.json.Jsonb(summary["tables"]), summary["run_id"]
                 ) == [("ok", r2, True)]  # fmt: skip


def test_revert_of_an_update_run_restores_every_previous_version(conn):
    base(conn)
    before, before_kpis = contents(conn), kpis(conn)
    r2 = run(conn, orders=[order(2, order_status="CANCELLED", customer_id=2, updated_at=ts(5)),
                           order(1, order_status="DELIVERED", order_ts=APRIL, net_amount=80, updated_at=ts(5))],
             payments=[payment(31, 2, payment_status="REFUNDED", updated_at=ts(5))],
             customers=[customer(1, full_name="Renamed", updated_at=ts(5))])  # fmt: skip
    assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_p2026_04"]
    summary = revert(conn, r2)
    assert summary["tables"]["fact_orders"] == {"deleted": 0, "restored": 2, "reinserted": 0}
    _assert_reverted(conn, before, before_kpis, "update run reverted")
    # the moved order (and its children) is back in its month
    assert partition_of(conn, "fact_orders", "order_id = 1") == ["globalcart.fact_orders_p2026_01"]
    assert scalar(conn, "SELECT loaded_run_id FROM globalcart.fact_orders WHERE order_id = 1") == summary["run_id"]


def test_revert_of_a_run_that_turned_an_order_returned(conn):
    base(conn)
    before, before_kpis = contents(conn), kpis(conn)
    r2 = run(conn, returns=[return_(80, 1, return_status="REFUNDED")])
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "RETURNED"
    assert kpis(conn)["return_rate"] == 1
    revert(conn, r2)
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "DELIVERED"
    _assert_reverted(conn, before, before_kpis, "RETURNED run reverted")


def test_a_revert_is_refused_while_a_later_run_changed_the_same_rows(conn):
    base(conn)
    r2 = run(conn, orders=[order(2, order_status="SHIPPED", customer_id=2, updated_at=ts(5)), order(3)])
    r3 = run(conn, orders=[order(2, order_status="DELIVERED", customer_id=2, updated_at=ts(9))])
    r4 = run(conn, orders=[order(4)])  # another row: no conflict
    state, runs = contents(conn), scalar(conn, "SELECT count(*) FROM globalcart.etl_runs")
    with pytest.raises(psycopg.Error) as refused:
        revert(conn, r2)
    assert refused.value.sqlstate == "GC011"
    assert f"run {r2} cannot be reverted: later run {r3} changed the same rows" in str(refused.value)
    assert f"Revert run {r3} first" in refused.value.diag.message_hint
    assert contents(conn) == state and scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == runs
    # reverting the later one first makes it possible; the unrelated run stays
    revert(conn, r3)
    revert(conn, r2)
    assert fetch(conn, "SELECT order_id, order_status FROM globalcart.fact_orders ORDER BY 1") == [
        (1, "DELIVERED"), (2, "PAID"), (4, "PLACED")]  # fmt: skip
    assert r4 > r3


def test_a_revert_is_refused_while_a_later_run_derived_state_from_its_rows(conn):
    base(conn)
    r2 = run(conn, returns=[return_(80, 2)])  # order 2 is PAID: the return changes nothing yet
    r3 = run(conn, orders=[order(2, order_status="DELIVERED", customer_id=2, updated_at=ts(60 * 40))])
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 2") == "RETURNED"
    with pytest.raises(psycopg.Error, match=f"later run {r3} changed the same rows") as refused:
        revert(conn, r2)
    assert refused.value.sqlstate == "GC011"
    revert(conn, r3)
    revert(conn, r2)
    assert fetch(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 2") == [("PAID",)]
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_returns") == 0


def test_a_revert_can_be_reverted(conn):
    base(conn)
    before, before_kpis = contents(conn), kpis(conn)
    r2 = run(conn, orders=[order(2, order_status="SHIPPED", customer_id=2, updated_at=ts(5)), order(3)],
             returns=[return_(80, 1)], funnel_events=[event("s1", "PURCHASE", event_ts=ts(2))])  # fmt: skip
    after, after_kpis = contents(conn), kpis(conn)
    v = revert(conn, r2)["run_id"]
    _assert_reverted(conn, before, before_kpis, "run reverted")
    w = revert(conn, v)
    assert w["reverted_run_id"] == v and w["tables"]["fact_orders"] == {"deleted": 0, "restored": 2, "reinserted": 1}
    _assert_reverted(conn, after, after_kpis, "revert reverted")
    # the run's changes are back: it can be reverted again, the first revert cannot
    with pytest.raises(psycopg.Error, match=f"run {v} was already reverted"):
        revert(conn, v)
    revert(conn, r2)
    _assert_reverted(conn, before, before_kpis, "run reverted again")


def test_a_run_that_does_not_exist_failed_or_was_reverted_is_refused_and_nothing_changes(conn):
    r1 = base(conn)
    setting = scalar(conn, "SELECT value FROM globalcart.etl_settings WHERE name = 'lock_timeout'")
    conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
    stage(conn, "orders", [order(9)])
    failed = refresh(conn)
    assert failed["status"] == "failed"
    conn.execute("UPDATE globalcart.etl_settings SET value = %s WHERE name = 'lock_timeout'", (setting,))
    r2 = run(conn, orders=[order(3)])
    revert(conn, r2)
    state, runs = contents(conn), scalar(conn, "SELECT count(*) FROM globalcart.etl_runs")
    for run_id, message in ((12345, "there is no run 12345"), (failed["run_id"], f"run {failed['run_id']} failed"),
                            (r2, f"run {r2} was already reverted")):  # fmt: skip
        with pytest.raises(psycopg.Error, match=message) as refused:
            revert(conn, run_id)
        assert refused.value.sqlstate == "GC010"
    assert contents(conn) == state and scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == runs
    assert r1 < r2


def test_only_the_owner_may_revert(conn):
    r1 = base(conn)
    assert scalar(conn, "SELECT has_function_privilege('globalcart_refresher', 'globalcart.revert_run(bigint)', "
                        "'EXECUTE')") is False  # fmt: skip
    assert scalar(conn, "SELECT has_function_privilege('globalcart_owner', 'globalcart.revert_run(bigint)', "
                        "'EXECUTE')") is True  # fmt: skip
    assert r1 > 0


# -- commands ------------------------------------------------------------------------------------------


def test_history_as_of_and_revert_commands(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        r1 = base(conn)
        r2 = run(conn, orders=[order(1, order_status="COMPLETED", updated_at=ts(9))], returns=[return_(80, 2)])
        first = finished(conn, r1)
    shown = run_cli("history", "1", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert "order_status: DELIVERED -> COMPLETED" in shown.stdout and "payment_id=30" in shown.stdout
    assert f"  {r2}  orders" in shown.stdout
    missing = run_cli("history", "424242", dsn=dsn)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no version" in missing.stderr

    then = run_cli("as-of", first.isoformat(), dsn=dsn)
    assert then.returncode == 0, then.stderr
    assert any(line.split()[:3] == ["orders", "2", "2"] for line in then.stdout.splitlines()), then.stdout
    early = run_cli("as-of", "2001-01-01", dsn=dsn)
    assert "no order had been loaded" in early.stdout

    preview = run_cli("revert", str(r2), dsn=dsn)
    assert preview.returncode == 0, preview.stderr
    assert "nothing changed yet" in preview.stdout and "fact_returns" in preview.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "COMPLETED"
    done = run_cli("revert", str(r2), "--yes", dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert f"reverted run {r2}" in done.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "DELIVERED"
    again = run_cli("revert", str(r2), "--yes", dsn=dsn)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already reverted" in again.stderr
    bad = run_cli("revert", "x", dsn=dsn)
    assert bad.returncode == 2 and "not a run id" in bad.stderr


# -- upgrade ------------------------------------------------------------------------------------------

PREVIOUS_RELEASE = "f41f853"  # main before history: no loaded_run_id, deletes not audited


@pytest.mark.slow
def test_an_upgraded_warehouse_gets_its_history_from_the_audit_tables(pg_server, tmp_path):
    """Installed and refreshed by the previous release, then migrated: a version that replaced
    another was written by the run that replaced it (0007's backfill), so as-of reads between the
    old runs are right; rows never updated were written before history was kept (NULL)."""
    from driver.core.migrate import migrate

    with installed_by_release(pg_server, tmp_path, PREVIOUS_RELEASE, "gc_upgrade7") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            r1 = run(conn, orders=[order(1), order(2)])
            r2 = run(conn, orders=[order(1, order_status="PAID", updated_at=ts(1))])
            r3 = run(conn, orders=[order(1, order_status="SHIPPED", updated_at=ts(2))])
            ends = [finished(conn, r) for r in (r1, r2, r3)]
        with psycopg.connect(dsn) as conn:
            assert "0007_history.sql" in migrate(conn, with_cron=False).applied
            conn.commit()
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert fetch(conn, "SELECT order_id, loaded_run_id FROM globalcart.fact_orders ORDER BY 1") == [
                (1, r3), (2, None)]  # fmt: skip
            assert fetch(conn, "SELECT order_status, loaded_run_id, audit_run_id FROM globalcart.audit_fact_orders "
                               "ORDER BY audit_id") == [("PLACED", None, r2), ("PAID", r2, r3)]  # fmt: skip
            for end, status in zip(ends, ("PLACED", "PAID", "SHIPPED"), strict=True):
                assert fetch(conn, "SELECT order_status FROM globalcart.fact_orders_as_of(%s) WHERE order_id = 1",
                             end) == [(status,)]  # fmt: skip
            # runs from before the upgrade cannot be reverted (their inserts were not recorded)
            with pytest.raises(psycopg.Error, match="before this warehouse kept history"):
                revert(conn, r3)
            r4 = run(conn, orders=[order(2, order_status="PAID", updated_at=ts(3))])
            revert(conn, r4)
            assert fetch(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 2") == [("PLACED",)]
