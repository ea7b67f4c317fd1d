"""KPI summaries kept by the refresh (docs/contract.md §3, "KPIs by slice"; docs/design.md rule 9): after every
refresh of every kind of change, the summaries equal a rebuild from the facts, and kpi_values()
over any slice equals the contract's definitions computed straight from the facts — here by SQL
of this test's own, not by the product's."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from helpers import event, fetch, item, order, payment, refresh, return_, run_cli, scalar, shipment, stage, ts

from driver.simulation.deltas import stage_window
from driver.simulation.seed import seed_history

AS_OF = datetime(2026, 10, 1, tzinfo=UTC)
KPIS = ["orders", "gmv_usd", "net_revenue_usd", "aov_usd", "units", "return_rate", "refunds_usd", "sla_breach_rate",
        "on_time_delivery_rate", "payment_failure_rate", "conversion_rate", "cart_abandonment_rate",
        "revenue_lost_due_to_failures", "revenue_lost_due_to_abandonment"]  # fmt: skip
SUMMARIES = {
    "kpi_order_state": "order_id",
    "kpi_order_summary": "order_day, country_code, channel, currency",
    "kpi_session_state": "session_id",
    "kpi_funnel_summary": "session_day, channel",
}

# The contract's definitions over a slice, straight from the facts.
ORDER_SIDE = """
WITH o AS (
  SELECT f.*, c.usd_rate, f.order_status <> 'CANCELLED' AS live
    FROM globalcart.fact_orders f JOIN globalcart.dim_currency c ON c.currency_code = f.currency
   WHERE (%(f)s::timestamptz IS NULL OR f.order_ts >= %(f)s) AND (%(t)s::timestamptz IS NULL OR f.order_ts < %(t)s)
     AND (%(country)s::text IS NULL OR f.country_code = %(country)s)
     AND (%(channel)s::text IS NULL OR f.channel = %(channel)s)
     AND f.deleted_at IS NULL  -- (a row deleted in its source counts nothing)
)
SELECT (SELECT count(*) FROM o WHERE live),
       (SELECT coalesce(sum(gross_amount * usd_rate), 0) FROM o WHERE live),
       (SELECT coalesce(sum(net_amount * usd_rate), 0) FROM o WHERE live),
       (SELECT coalesce(sum(i.quantity), 0) FROM globalcart.fact_order_items i JOIN o USING (order_id)
         WHERE o.live AND i.deleted_at IS NULL),
       (SELECT count(*) FROM o WHERE order_status = 'RETURNED'),
       (SELECT count(*) FROM o WHERE order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED')),
       (SELECT coalesce(sum(r.refund_amount * o.usd_rate), 0) FROM globalcart.fact_returns r JOIN o USING (order_id)
         WHERE r.return_status = 'REFUNDED' AND r.deleted_at IS NULL),
       (SELECT count(*) FROM globalcart.fact_shipments s JOIN o USING (order_id)
         WHERE s.delivered_ts IS NOT NULL AND s.deleted_at IS NULL),
       (SELECT count(*) FROM globalcart.fact_shipments s JOIN o USING (order_id)
         WHERE s.delivered_ts IS NOT NULL AND s.sla_breached_flag AND s.deleted_at IS NULL),
       (SELECT count(*) FROM globalcart.fact_payments p JOIN o USING (order_id) WHERE p.deleted_at IS NULL),
       (SELECT count(*) FROM globalcart.fact_payments p JOIN o USING (order_id)
         WHERE p.payment_status = 'FAILED' AND p.deleted_at IS NULL)
"""
FUNNEL_SIDE = """
WITH firsts AS (
  SELECT DISTINCT ON (session_id) session_id, event_ts, channel
    FROM globalcart.fact_funnel_events ORDER BY session_id, event_ts, event_id
), s AS (
  SELECT e.session_id, bool_or(e.event_type = 'PURCHASE') AS purchased, bool_or(e.event_type = 'ADD_TO_CART') AS carted,
         bool_or(e.event_type = 'PAYMENT_FAILED') AS failed, max(e.cart_value_usd) AS cart
    FROM globalcart.fact_funnel_events e JOIN firsts f USING (session_id)
   WHERE (%(f)s::timestamptz IS NULL OR f.event_ts >= %(f)s) AND (%(t)s::timestamptz IS NULL OR f.event_ts < %(t)s)
     AND (%(channel)s::text IS NULL OR f.channel = %(channel)s)
   GROUP BY e.session_id
)
SELECT count(*), count(*) FILTER (WHERE purchased), count(*) FILTER (WHERE carted),
       count(*) FILTER (WHERE carted AND NOT purchased),
       coalesce(sum(cart) FILTER (WHERE failed AND NOT purchased), 0),
       coalesce(sum(cart) FILTER (WHERE carted AND NOT failed AND NOT purchased), 0)
  FROM s
"""


def _ratio(num, den):
    return None if den == 0 else Decimal(num) / Decimal(den)


def expected_kpis(conn, f=None, t=None, country=None, channel=None) -> dict:
    params = {"f": f, "t": t, "country": country, "channel": channel}
    orders, gmv, net, units, returned, delivered, refunds, shipped, breached, pays, failed = conn.execute(
        ORDER_SIDE, params).fetchone()  # fmt: skip
    sessions, purchased, carted, abandoned, lost_f, lost_a = conn.execute(FUNNEL_SIDE, params).fetchone()
    sla = _ratio(breached, shipped)
    values = {
        "orders": orders, "gmv_usd": gmv, "net_revenue_usd": net - refunds, "aov_usd": _ratio(net, orders),
        "units": units, "return_rate": _ratio(returned, delivered), "refunds_usd": refunds, "sla_breach_rate": sla,
        "on_time_delivery_rate": None if sla is None else 1 - sla, "payment_failure_rate": _ratio(failed, pays),
        "conversion_rate": _ratio(purchased, sessions), "cart_abandonment_rate": _ratio(abandoned, carted),
        "revenue_lost_due_to_failures": lost_f, "revenue_lost_due_to_abandonment": lost_a,
    }  # fmt: skip
    if country is not None:
        for name in KPIS[10:]:
            values[name] = None
    return values


def kpi_values(conn, f=None, t=None, country=None, channel=None) -> dict:
    rows = fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_values(%s, %s, %s, %s) ORDER BY kpi_order",
                 f, t, country, channel)  # fmt: skip
    assert [name for name, _ in rows] == KPIS
    return dict(rows)


def assert_same_kpis(got: dict, want: dict, where: str) -> None:
    for name in KPIS:
        g, w = got[name], want[name]
        if w is None or g is None:
            assert g is None and w is None, f"{name} {where}: {g} != {w}"
        elif name in ("aov_usd", "return_rate", "sla_breach_rate", "on_time_delivery_rate", "payment_failure_rate",
                      "conversion_rate", "cart_abandonment_rate"):  # fmt: skip
            close = abs(Decimal(g) - Decimal(w)) <= Decimal("1e-15") * max(1, abs(Decimal(w)))
            assert close, f"{name} {where}: {g} != {w}"
        else:  # counts and sums: exact
            assert Decimal(g) == Decimal(w), f"{name} {where}: {g} != {w}"


def summary_rows(conn) -> dict:
    return {table: fetch(conn, f"SELECT * FROM globalcart.{table} ORDER BY {key}") for table, key in SUMMARIES.items()}


def assert_summaries_equal_a_rebuild(conn, where: str) -> None:
    conn.commit()  # (the caller's refresh, committed: on Citus its writes are read by this role next)
    kept = summary_rows(conn)
    conn.commit()
    with conn.transaction():
        # (as the owner, the role rebuild_kpi_summaries writes as: on Citus a transaction may not read
        # a distributed table's placements, kpi_order_state's, that another role wrote in it)
        conn.execute("SET LOCAL ROLE globalcart_owner")
        conn.execute("SELECT globalcart.rebuild_kpi_summaries()")
        rebuilt = summary_rows(conn)
        raise psycopg.Rollback()
    for table in SUMMARIES:
        assert kept[table] == rebuilt[table], f"{table} differs from a rebuild {where}"
    assert kept["kpi_order_summary"], "nothing was summarised"


def random_slices(conn, rng: random.Random, count: int):
    lo, hi = fetch(conn, "SELECT min(order_ts), max(order_ts) FROM globalcart.fact_orders")[0]
    countries = [r[0] for r in fetch(conn, "SELECT DISTINCT country_code FROM globalcart.fact_orders")] + ["ZZ"]
    channels = [r[0] for r in fetch(conn, "SELECT DISTINCT channel FROM globalcart.fact_orders")] + ["carrier-pigeon"]
    span = (hi - lo).total_seconds()
    yield None, None, None, None
    for n in range(count):
        a = lo + timedelta(seconds=rng.uniform(-0.1, 1.1) * span)
        b = a + timedelta(seconds=rng.uniform(0, 0.4) * span)
        if n % 4 == 1:  # whole UTC days
            a, b = (x.replace(hour=0, minute=0, second=0, microsecond=0) for x in (a, b))
        if n % 7 == 2:
            a, b = b, a  # reversed: an empty slice
        if n % 5 == 3:
            a = None
        if n % 6 == 4:
            b = None
        if n % 9 == 5:  # within one day
            b = a + timedelta(hours=rng.uniform(0, 20)) if a else b
        yield a, b, rng.choice([None, None, *countries]), rng.choice([None, None, *channels])


def _change_buckets(conn, rng: random.Random, stamp: datetime) -> None:
    """Changes the simulator does not make, staged by hand: orders moved to another day, country or
    channel, cancelled, or delivered then returned (derived); funnel events earlier than a
    session's first one, in another channel."""
    rows = fetch(conn, """SELECT order_id, customer_id, order_ts, order_status, channel, country_code, currency,
                                 gross_amount, discount_amount, shipping_amount, net_amount, updated_at
                            FROM globalcart.fact_orders ORDER BY order_id""")  # fmt: skip
    picked = rng.sample(rows, min(12, len(rows)))
    staged = []
    for n, r in enumerate(picked):
        names = ["order_id", "customer_id", "order_ts", "order_status", "channel", "country_code", "currency",
                 "gross_amount", "discount_amount", "shipping_amount", "net_amount", "updated_at"]  # fmt: skip
        o = dict(zip(names, r, strict=True))
        o["updated_at"] = max(stamp, o["updated_at"] + timedelta(seconds=1))
        if n % 4 == 0:
            o["order_ts"] = o["order_ts"] - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
        elif n % 4 == 1:
            o["country_code"], o["channel"] = rng.choice(["DE", "IN", "BR"]), rng.choice(["web", "app", "marketplace"])
        elif n % 4 == 2 and o["order_status"] in ("PLACED", "PAID"):
            o["order_status"] = "CANCELLED"
        elif n % 4 == 3 and o["order_status"] == "SHIPPED":
            o["order_status"] = "DELIVERED"
        staged.append(o)
    stage(conn, "orders", staged)
    sessions = fetch(conn, "SELECT session_id, min(event_ts) FROM globalcart.fact_funnel_events GROUP BY 1 ORDER BY 1")
    early = []
    for session_id, first in rng.sample(sessions, min(5, len(sessions))):
        early.append(event(session_id, rng.choice(["PAGE_VIEW", "ADD_TO_CART", "PURCHASE", "PAYMENT_FAILED"]),
                           event_ts=first - timedelta(minutes=rng.randint(1, 3000)), channel="email",
                           cart_value_usd=Decimal(rng.randint(100, 90000)) / 100, updated_at=stamp))  # fmt: skip
    stage(conn, "funnel_events", early)
    conn.commit()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 17, 29])
def test_incremental_summaries_equal_a_rebuild_and_slices_equal_the_facts(dsn, seed):
    rng = random.Random(seed)
    with psycopg.connect(dsn) as conn:
        seed_history(conn, dsn, orders=400, seed=seed, as_of=AS_OF - timedelta(days=2), days=40, chunk_orders=150)
        assert_summaries_equal_a_rebuild(conn, "after the seed")
        since = AS_OF - timedelta(days=2)
        for window in range(5):
            until = since + timedelta(hours=8)
            stage_window(conn, since=since, until=until, seed=seed * 100 + window, orders=60, duplicates=0.1,
                         out_of_order=0.1, bad_rows=4)  # fmt: skip
            if window % 2 == 1:
                _change_buckets(conn, rng, until)
            summary = refresh(conn)
            assert summary["status"] == "ok", summary
            assert_summaries_equal_a_rebuild(conn, f"after window {window} (seed {seed})")
            for f, t, country, channel in random_slices(conn, rng, 12):
                where = f"for slice {f}..{t} {country} {channel} after window {window} (seed {seed})"
                assert_same_kpis(kpi_values(conn, f, t, country, channel), expected_kpis(conn, f, t, country, channel),
                                 where)  # fmt: skip
            since = until


def test_a_late_return_changes_one_bucket(conn):
    stage(conn, "orders", [order(1, order_ts=ts(-3000), order_status="DELIVERED", country_code="DE", channel="app"),
                           order(2, order_ts=ts(-9000), order_status="DELIVERED", country_code="US")])  # fmt: skip
    stage(conn, "order_items", [item(10, 1, quantity=2), item(20, 2, quantity=5)])
    refresh(conn)
    before = summary_rows(conn)["kpi_order_summary"]
    stage(conn, "returns",
          [return_(100, 2, refund_amount=Decimal("12.50"), return_status="REFUNDED", updated_at=ts(5))])  # fmt: skip
    refresh(conn)
    after = summary_rows(conn)["kpi_order_summary"]
    changed = set(after) - set(before)
    assert len(changed) == 1 and len(set(before) - set(after)) == 1
    (row,) = changed
    assert row[1:3] == ("US", order(2)["channel"])
    assert row[9] == 1  # returned_orders: the return turned the order RETURNED (derived)
    assert row[11] == Decimal("12.50")  # refund_amount


def test_empty_slices_give_zero_counts_and_null_ratios(conn):
    stage(conn, "orders", [order(1, order_ts=ts(-60))])
    stage(conn, "funnel_events", [event("s1", "ADD_TO_CART", cart_value_usd=Decimal("5"))])
    refresh(conn)
    for args in [(ts(10), ts(-10), None, None), (None, None, "ZZ", None), (None, None, None, "nope")]:
        values = kpi_values(conn, *args)
        assert values["orders"] == 0 and values["gmv_usd"] == 0 and values["units"] == 0, args
        assert values["aov_usd"] is None and values["return_rate"] is None and values["payment_failure_rate"] is None
        assert values["revenue_lost_due_to_failures"] in (0, None)
    assert kpi_values(conn, None, None, None, "nope")["cart_abandonment_rate"] is None
    assert kpi_values(conn)["cart_abandonment_rate"] == 1


def test_funnel_kpis_are_null_for_a_country_and_follow_the_first_events_channel(conn):
    stage(conn, "orders", [order(1, country_code="DE")])
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", channel="email", event_ts=ts(-30)),
                                  event("s1", "PURCHASE", channel="web", event_ts=ts(-20))])  # fmt: skip
    refresh(conn)
    de = kpi_values(conn, None, None, "DE", None)
    assert de["orders"] == 1 and all(de[name] is None for name in KPIS[10:])
    assert kpi_values(conn, None, None, None, "email")["conversion_rate"] == 1
    assert kpi_values(conn, None, None, None, "web")["conversion_rate"] is None
    # an earlier event in another channel makes that channel the session's
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", channel="app", event_ts=ts(-40))])
    refresh(conn)
    assert kpi_values(conn, None, None, None, "email")["conversion_rate"] is None
    assert kpi_values(conn, None, None, None, "app")["conversion_rate"] == 1
    assert scalar(conn, "SELECT channel FROM globalcart.kpi_session_state WHERE session_id = 's1'") == "app"


def test_snapshot_and_kpi_daily_read_the_summaries(conn):
    stage(conn, "orders", [order(1, order_ts=datetime(2026, 3, 1, 10, tzinfo=UTC), country_code="DE"),
                           order(2, order_ts=datetime(2026, 3, 1, 23, tzinfo=UTC), country_code="DE"),
                           order(3, order_ts=datetime(2026, 3, 2, 1, tzinfo=UTC), country_code="DE")])  # fmt: skip
    stage(conn, "payments", [payment(10, 1, payment_status="FAILED"), payment(11, 1), payment(30, 3)])
    stage(conn, "shipments", [shipment(20, 2, delivered_ts=ts(0), promised_ts=ts(-10))])
    refresh(conn)
    days = fetch(conn, """SELECT day, orders, payments, failed_payments, payment_failure_rate, sla_breach_rate
                            FROM globalcart.kpi_daily WHERE country_code = 'DE' ORDER BY day""")  # fmt: skip
    assert [(d.isoformat(), o, p, f) for d, o, p, f, _, _ in days] == [("2026-03-01", 2, 2, 1), ("2026-03-02", 1, 1, 0)]
    assert days[0][4] == Decimal("0.5") and days[0][5] == 1 and days[1][5] is None
    snap = scalar(conn, "SELECT globalcart.snapshot_kpis('s')")
    stored = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s", snap))
    assert stored == kpi_values(conn)
    # whole days are read from the summaries alone; part of a day from the facts (the counters of
    # pg_stat_xact_user_tables are this session's, not yet reported: compare before and after)
    reads = (
        "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_xact_user_tables "
        "WHERE relname LIKE 'fact\\_%%'"
    )
    conn.commit()
    with conn.transaction():
        before = scalar(conn, reads)
        conn.execute("SELECT * FROM globalcart.kpi_values(NULL, NULL, 'DE', NULL)")
        conn.execute("SELECT * FROM globalcart.kpi_values('2026-03-01 00:00+00', '2026-03-02 00:00+00')")
        conn.execute("SELECT globalcart.snapshot_kpis('t')")
        assert scalar(conn, reads) == before
        conn.execute("SELECT * FROM globalcart.kpi_values('2026-03-01 12:00+00', '2026-03-03 00:00+00')")
        assert scalar(conn, reads) > before
        raise psycopg.Rollback()


def test_rebuild_repairs_summaries_after_a_change_outside_the_refresh(conn):
    stage(conn, "orders", [order(1), order(2)])
    refresh(conn)
    conn.execute("UPDATE globalcart.fact_orders SET gross_amount = gross_amount + 100 WHERE order_id = 1")
    conn.commit()
    assert kpi_values(conn)["gmv_usd"] != expected_kpis(conn)["gmv_usd"]  # the summaries did not see it
    assert fetch(conn, "SELECT * FROM globalcart.rebuild_kpi_summaries()") == [(1, 0, 0)]
    conn.commit()
    assert_same_kpis(kpi_values(conn), expected_kpis(conn), "after the rebuild")


def test_kpis_command_prints_a_slice(dsn):
    with psycopg.connect(dsn) as conn:
        stage(conn, "orders", [order(1, order_ts=datetime(2026, 3, 1, 10, tzinfo=UTC), country_code="DE"),
                               order(2, order_ts=datetime(2026, 4, 1, 10, tzinfo=UTC), country_code="US")])  # fmt: skip
        refresh(conn)
    result = run_cli("kpis", "--from", "2026-03-01", "--to", "2026-04-01", "--country", "DE", dsn=dsn)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert any(line.split()[:2] == ["orders", "1"] for line in lines), out
    assert "2026-03-01" in out and "DE" in out
    result = run_cli("kpis", "--from", "2026-04-02", "--to", "2026-04-01", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "empty slice" in result.stdout
    result = run_cli("kpis", "--from", "yesterday-ish", dsn=dsn)
    assert result.returncode == 2 and "--from" in result.stderr and "Traceback" not in result.stderr
