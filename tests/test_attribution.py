"""Why the KPIs moved (docs/contract.md §8, docs/attribution.md): every refresh and revert records its
change to the KPIs' partial state by cause; explain_kpis splits a KPI's change between two snapshots,
or over one run, into those causes — the contributions adding up to the change exactly, whatever
happened (duplicates, out-of-order versions, bad rows, reverts, changes outside the refresh)."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from helpers import event, fetch, order, payment, refresh, return_, run_cli, scalar, shipment, stage, ts

from driver.simulation.deltas import stage_window
from driver.simulation.seed import seed_history

AS_OF = datetime(2026, 10, 1, tzinfo=UTC)
CAUSES = {"new_orders", "order_updates", "deletes", "items", "payments", "shipments", "returns", "funnel", "reverts",
          "outside_refresh"}  # fmt: skip


def explain(conn: psycopg.Connection, *args) -> dict[str, dict]:
    """explain_kpis(...) as {kpi: {"before", "after", "change", "causes": {cause: contribution}}}."""
    placeholders = ", ".join(["%s"] * len(args))
    out: dict[str, dict] = {}
    for kpi, before, after, change, cause, contribution, _ in fetch(
        conn, f"SELECT * FROM globalcart.explain_kpis({placeholders})", *args
    ):
        entry = out.setdefault(kpi, {"before": before, "after": after, "change": change, "causes": {}})
        assert (entry["before"], entry["after"], entry["change"]) == (before, after, change), kpi
        assert cause not in entry["causes"], (kpi, cause)
        entry["causes"][cause] = contribution
    return out


def assert_adds_up(explained: dict[str, dict], where: str) -> None:
    for kpi, entry in explained.items():
        assert set(entry["causes"]) <= CAUSES, (kpi, where)
        if entry["change"] is None:
            assert all(c is None for c in entry["causes"].values()), (kpi, where)
            continue
        assert entry["change"] == entry["after"] - entry["before"], (kpi, where)
        assert sum(entry["causes"].values()) == entry["change"], (kpi, entry, where)  # exactly
        assert all(c != 0 for c in entry["causes"].values()), (kpi, where)


def values(conn: psycopg.Connection) -> dict[str, Decimal | None]:
    return dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values()"))


def causes_of(explained: dict[str, dict]) -> set[str]:
    return {cause for entry in explained.values() for cause in entry["causes"]}


def last_run(conn: psycopg.Connection) -> int:
    return scalar(conn, "SELECT max(run_id) FROM globalcart.etl_runs WHERE status = 'ok'")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 23])
def test_contributions_add_up_exactly_over_runs_and_snapshots(dsn, seed):
    rng = random.Random(seed)
    with psycopg.connect(dsn) as conn:
        seed_history(conn, dsn, orders=300, seed=seed, as_of=AS_OF - timedelta(days=2), days=30, chunk_orders=150)
        labels = ["seeded"]
        scalar(conn, "SELECT globalcart.snapshot_kpis('seeded')")
        since = AS_OF - timedelta(days=2)
        for window in range(6):
            until = since + timedelta(hours=8)
            stage_window(conn, since=since, until=until, seed=seed * 100 + window, orders=50, duplicates=0.1,
                         out_of_order=0.1, bad_rows=3)  # fmt: skip
            before = values(conn)
            summary = refresh(conn)
            assert summary["status"] == "ok", summary
            run = explain(conn, summary["run_id"])
            assert_adds_up(run, f"run of window {window}")
            after = values(conn)
            for kpi, entry in run.items():  # a run's before and after are the warehouse's
                assert (entry["before"], entry["after"]) == (before[kpi], after[kpi]), kpi
            assert set(after) - set(run) == {k for k in after if after[k] == before[k]}
            assert "outside_refresh" not in causes_of(run)
            if window == 3:  # a revert is a run too
                reverted = scalar(conn, "SELECT (globalcart.revert_run(%s)) ->> 'run_id'", summary["run_id"])
                assert causes_of(explain(conn, int(reverted))) == {"reverts"}
            if rng.random() < 0.7:
                labels.append(f"w{window}")
                scalar(conn, "SELECT globalcart.snapshot_kpis(%s)", labels[-1])
            since = until
        conn.commit()
        for _ in range(8):
            a, b = rng.sample(labels, 2)
            forward, backward = explain(conn, a, b), explain(conn, b, a)
            assert_adds_up(forward, f"{a} -> {b}")
            assert_adds_up(backward, f"{b} -> {a}")
            assert "outside_refresh" not in causes_of(forward)  # nothing changed outside the refresh
            for kpi, entry in forward.items():  # the other direction is its negative
                assert backward[kpi]["change"] == (None if entry["change"] is None else -entry["change"])
                assert backward[kpi]["causes"] == {c: None if v is None else -v for c, v in entry["causes"].items()}
        stored = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = "
                                  "(SELECT max(snapshot_id) FROM globalcart.kpi_snapshots WHERE label = %s)",
                            labels[-1]))  # fmt: skip
        for kpi, entry in explain(conn, labels[0], labels[-1]).items():
            assert entry["after"] == stored[kpi]


def two_delivered_orders(conn: psycopg.Connection) -> None:
    stage(conn, "orders", [order(1, order_status="DELIVERED"), order(2, order_status="DELIVERED", currency="EUR")])
    stage(conn, "payments", [payment(10, 1), payment(20, 2, payment_status="FAILED")])
    stage(conn, "shipments", [shipment(30, 1, delivered_ts=ts(100), sla_breached_flag=False)])
    assert refresh(conn)["status"] == "ok"


def test_a_run_of_one_kind_of_change_is_that_cause_alone(conn):
    two_delivered_orders(conn)
    first = explain(conn, last_run(conn))
    assert causes_of(first) == {"new_orders"}
    assert first["orders"]["change"] == 2 and first["orders"]["causes"] == {"new_orders": 2}

    # only a late return, refunded: return_rate, refunds and net revenue move by returns alone
    stage(conn, "returns", [return_(40, 2, return_status="REFUNDED", refund_amount=Decimal("12.50"))])
    assert refresh(conn)["status"] == "ok"
    late = explain(conn, last_run(conn))
    assert causes_of(late) == {"returns"}
    assert late["return_rate"]["causes"] == {"returns": Decimal("0.5")}
    assert late["return_rate"]["after"] == Decimal("0.5")
    assert set(late) == {"return_rate", "refunds_usd", "net_revenue_usd"}

    # only a shipment turning late
    late = 60 * 80  # (promised in 72 hours)
    stage(conn, "shipments", [shipment(30, 1, delivered_ts=ts(late), updated_at=ts(late))])
    assert refresh(conn)["status"] == "ok"
    shipped = explain(conn, last_run(conn))
    assert causes_of(shipped) == {"shipments"} and set(shipped) == {"sla_breach_rate", "on_time_delivery_rate"}
    assert shipped["sla_breach_rate"]["causes"] == {"shipments": 1}

    # only new orders, beside the stored ones
    stage(conn, "orders", [order(3), order(4, order_status="CANCELLED")])
    assert refresh(conn)["status"] == "ok"
    assert causes_of(explain(conn, last_run(conn))) == {"new_orders"}

    # only a revert (of the late shipment)
    reverted = scalar(conn, "SELECT (globalcart.revert_run(%s)) ->> 'run_id'", last_run(conn) - 1)
    undone = explain(conn, int(reverted))
    assert causes_of(undone) == {"reverts"} and undone["sla_breach_rate"]["causes"] == {"reverts": -1}


def test_one_order_touched_by_several_sources_is_split_in_the_order_they_apply(conn):
    stage(conn, "orders", [order(1, order_status="SHIPPED"), order(2, order_status="DELIVERED")])
    stage(conn, "shipments", [shipment(30, 1), shipment(31, 2, delivered_ts=ts(100), sla_breached_flag=False)])
    assert refresh(conn)["status"] == "ok"
    # one batch: order 1 delivered (a new version), its shipment late, a refund that turns it RETURNED
    stage(conn, "orders", [order(1, order_status="DELIVERED", updated_at=ts(60 * 90))])
    stage(conn, "shipments", [shipment(30, 1, delivered_ts=ts(60 * 80), updated_at=ts(250))])
    stage(conn, "returns", [return_(40, 1, return_status="REFUNDED", refund_amount=30)])
    assert refresh(conn)["status"] == "ok"
    assert scalar(conn, "SELECT order_status FROM globalcart.fact_orders WHERE order_id = 1") == "RETURNED"
    run = explain(conn, last_run(conn))
    assert_adds_up(run, "mixed run")
    # return_rate 0/1 -> 1/2: the update delivered it (the denominator: (0 - 0 x 1) / 2 = 0, no row), the
    # return turned it RETURNED (+0.5)
    assert run["return_rate"]["causes"] == {"returns": Decimal("0.5")}
    assert run["sla_breach_rate"]["causes"] == {"shipments": Decimal("0.5")}
    assert run["refunds_usd"]["causes"] == {"returns": 30}
    assert causes_of(run) == {"shipments", "returns"}


def test_deletes_and_funnel_are_causes_of_their_own(conn):
    stage(conn, "funnel_events", [event("s0", "PAGE_VIEW")])
    two_delivered_orders(conn)
    stage(conn, "orders", [order(1, order_status="DELIVERED", deleted=True, updated_at=ts(5))])
    stage(conn, "funnel_events", [event("s1", "PURCHASE")])
    assert refresh(conn)["status"] == "ok"
    run = explain(conn, last_run(conn))
    assert_adds_up(run, "deletes and funnel")
    assert run["orders"]["causes"] == {"deletes": -1}
    assert run["conversion_rate"]["causes"] == {"funnel": Decimal("0.5")}
    assert causes_of(run) == {"deletes", "funnel"}


def test_a_currency_rate_changed_between_snapshots_is_outside_the_refresh(conn):
    two_delivered_orders(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('before')")
    conn.execute("UPDATE globalcart.dim_currency SET usd_rate = usd_rate * 2 WHERE currency_code = 'EUR'")
    stage(conn, "orders", [order(3, gross_amount=50, net_amount=45)])
    assert refresh(conn)["status"] == "ok"
    scalar(conn, "SELECT globalcart.snapshot_kpis('after')")
    window = explain(conn, "before", "after")
    assert_adds_up(window, "rate change")
    eur = scalar(conn, "SELECT usd_rate FROM globalcart.dim_currency WHERE currency_code = 'EUR'")
    assert window["gmv_usd"]["causes"] == {"new_orders": 50, "outside_refresh": 100 * eur / 2}
    assert window["orders"]["causes"] == {"new_orders": 1}


def test_rebuilds_and_runs_without_attribution_are_outside_the_refresh(conn):
    two_delivered_orders(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('before')")
    conn.execute("UPDATE globalcart.etl_settings SET value = 'off' WHERE name = 'kpi_attribution'")
    stage(conn, "orders", [order(3)])
    run_off = refresh(conn)["run_id"]
    conn.execute("UPDATE globalcart.etl_settings SET value = 'on' WHERE name = 'kpi_attribution'")
    stage(conn, "orders", [order(4)])
    refresh(conn)
    # a fact changed outside the refresh, then the summaries rebuilt from the facts
    conn.execute("UPDATE globalcart.fact_orders SET gross_amount = 200 WHERE order_id = 1")
    conn.execute("SELECT globalcart.rebuild_kpi_summaries()")
    scalar(conn, "SELECT globalcart.snapshot_kpis('after')")
    window = explain(conn, "before", "after")
    assert_adds_up(window, "attribution off, a rebuild")
    assert window["orders"]["causes"] == {"new_orders": 1, "outside_refresh": 1}
    assert window["gmv_usd"]["causes"] == {"new_orders": 100, "outside_refresh": 200}
    with pytest.raises(psycopg.Error) as raised:
        explain(conn, run_off)
    assert raised.value.sqlstate == "GC013" and f"run {run_off}" in str(raised.value)
    conn.rollback()
    conn.execute("UPDATE globalcart.etl_settings SET value = 'maybe' WHERE name = 'kpi_attribution'")
    stage(conn, "orders", [order(5)])
    failed = refresh(conn)
    assert failed["status"] == "failed" and failed["error"]["sqlstate"] == "GC001"


def test_unknown_labels_runs_and_old_snapshots(conn):
    two_delivered_orders(conn)
    for args in [("nope", "nope2"), (123456,)]:
        with pytest.raises(psycopg.Error) as raised:
            explain(conn, *args)
        assert raised.value.sqlstate == "GC013"
        assert ("'nope'" if len(args) == 2 else "run 123456") in str(raised.value)
        conn.rollback()
    scalar(conn, "SELECT globalcart.snapshot_kpis('old')")
    stage(conn, "orders", [order(3)])
    refresh(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('new')")
    assert explain(conn, "old", "old") == {}
    # a snapshot from before the attribution existed: no sums — the whole change is outside_refresh
    conn.execute("DELETE FROM globalcart.kpi_snapshot_sums WHERE snapshot_id = "
                 "(SELECT max(snapshot_id) FROM globalcart.kpi_snapshots WHERE label = 'old')")  # fmt: skip
    window = explain(conn, "old", "new")
    assert window["orders"]["causes"] == {"outside_refresh": 1}
    assert causes_of(window) == {"outside_refresh"}


def test_kpi_parts_define_the_same_kpis_as_kpi_from_sums(conn):
    """explain_kpis splits a ratio by its numerator and denominator (kpi_parts): they must be those
    whose ratio kpi_from_sums computes, for any sums."""
    rng = random.Random(7)
    for _ in range(30):
        sums = [rng.randint(0, 50) if rng.random() > 0.2 else 0 for _ in range(17)]
        sums[8] = min(sums[8], sums[7])  # breached ≤ delivered
        row = "ROW(" + ", ".join(map(str, sums)) + ")::globalcart.kpi_partial"
        pairs = fetch(conn, f"SELECT v.kpi_name, v.kpi_value, p.n, p.d FROM globalcart.kpi_values_of({row}) v "
                            f"JOIN globalcart.kpi_parts({row}) p USING (kpi_order)")  # fmt: skip
        assert len(pairs) == 14
        for name, value, n, d in pairs:
            expected = n if d is None else (None if d == 0 else n / d)
            assert (value is None) == (expected is None), name
            if value is not None:
                assert abs(value - expected) < Decimal("1e-15"), (name, value, expected)


def test_explain_command(dsn, conn):
    two_delivered_orders(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('before')")
    stage(conn, "returns", [return_(40, 2, return_status="REFUNDED", refund_amount=Decimal("12.50"))])
    stage(conn, "orders", [order(3)])
    refresh(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('after')")
    conn.commit()
    result = run_cli("explain", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "return_rate +0.5 (0 -> 0.5000): returns +0.5\n" in result.stdout
    assert "orders +1 (2 -> 3): new_orders +1\n" in result.stdout
    as_json = run_cli("explain", "--from", "before", "--to", "after", "--json", dsn=dsn)
    import json

    rows = json.loads(as_json.stdout)
    assert {r["cause"] for r in rows if r["kpi"] == "return_rate"} == {"returns"}
    run = run_cli("explain", "--run", str(last_run(conn)), "--top", "1", dsn=dsn)
    assert run.returncode == 0 and "in run" in run.stdout
    assert "gmv_usd +100 (" in run.stdout and ": new_orders +100\n" in run.stdout
    bad = run_cli("explain", "--from", "nope", dsn=dsn)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    both = run_cli("explain", "--run", "1", "--from", "before", dsn=dsn)
    assert both.returncode == 2


def test_retention_purges_the_attribution_no_window_can_reach(conn):
    two_delivered_orders(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('old')")
    for n in range(3, 6):
        stage(conn, "orders", [order(n)])
        refresh(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('before')")
    stage(conn, "orders", [order(9)])
    stage(conn, "returns", [return_(40, 2, return_status="REFUNDED")])
    refresh(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('after')")
    kept_window, kept_run = explain(conn, "before", "after"), explain(conn, last_run(conn))
    # everything up to the 'before' snapshot is older than the retention
    conn.execute("UPDATE globalcart.etl_runs SET started_at = now() - interval '100 days' WHERE run_id < %s",
                 (last_run(conn),))  # fmt: skip
    conn.execute("UPDATE globalcart.kpi_snapshots SET taken_at = now() - interval '100 days' WHERE label = 'old'")
    purged = scalar(conn, "SELECT globalcart.purge_history()")
    assert purged["kpi_attribution"] > 0
    assert scalar(conn, "SELECT count(*) FROM globalcart.kpi_snapshot_sums") == 2
    assert scalar(conn, "SELECT count(*) FROM globalcart.kpi_run_sums") == 1
    assert explain(conn, "before", "after") == kept_window and explain(conn, last_run(conn)) == kept_run
    assert kept_window["orders"]["causes"] == {"new_orders": 1}


def test_snapshots_taken_before_any_run(conn):
    """A snapshot that saw no run bounds its window all the same: runs after it are not in a window that ends there."""
    scalar(conn, "SELECT globalcart.snapshot_kpis('empty')")
    scalar(conn, "SELECT globalcart.snapshot_kpis('still empty')")
    two_delivered_orders(conn)
    scalar(conn, "SELECT globalcart.snapshot_kpis('two')")
    assert explain(conn, "empty", "still empty") == {}
    window = explain(conn, "still empty", "two")
    assert_adds_up(window, "from before any run")
    assert window["orders"]["causes"] == {"new_orders": 2} and causes_of(window) == {"new_orders"}
    since = fetch(conn, "SELECT kpi, cause, contribution FROM globalcart.explain_kpis_since('empty') "
                        "WHERE kpi = 'orders'")
    assert since == [("orders", "new_orders", 2)]
