"""The simulated source: deterministic, realistic rates, every kind of change of the seed
document in its deltas, and clear errors on bad arguments."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import KEY_OF, SOURCES, fetch, refresh, run_cli, scalar, staged_count, table_digest
from servers import database

from driver.simulation.deltas import generate_delta
from driver.simulation.generator import COLUMNS, Batch, Generator, Ids, usd_rates
from driver.simulation.seed import seed_history
from driver.simulation.staging import copy_batch

AS_OF = datetime(2026, 10, 1, tzinfo=UTC)


def _seed(dsn, orders=3000, seed=7):
    with psycopg.connect(dsn) as conn:
        return seed_history(conn, dsn, orders=orders, seed=seed, as_of=AS_OF, chunk_orders=1000)


def test_same_seed_gives_the_same_rows(conn):
    def generate():
        gen = Generator(11, usd_rates(conn))
        ids = Ids()
        batch = Batch()
        batch.rows["customers"] = gen.make_customers(ids, 50, AS_OF)
        batch.rows["products"] = gen.make_products(ids, 20, AS_OF)
        for n in range(200):
            gen.make_order(ids, batch, AS_OF - timedelta(hours=n), AS_OF)
            gen.make_session(batch, AS_OF - timedelta(hours=n), [1, 2, 3], AS_OF)
        return batch.rows

    first, second = generate(), generate()
    assert first == second
    assert all(first[s] for s in ("customers", "products", "orders", "order_items", "payments", "funnel_events"))
    other = Generator(12, usd_rates(conn))
    assert other.make_customers(Ids(), 50, AS_OF) != first["customers"]


def test_seeding_twice_with_one_seed_builds_identical_warehouses(pg_server, template_db):
    digests = []
    for name in ("gc_seed_a", "gc_seed_b"):
        janitor = database(pg_server, name, template_db)
        janitor.init()
        try:
            _seed(pg_server.dsn(name), orders=800)
            with psycopg.connect(pg_server.dsn(name)) as conn:
                # (not loaded_run_id: the seed stages and refreshes at once, so how many calls it
                # takes, and which call wrote a row, depends on timing)
                digests.append({t: table_digest(conn, t, without=("loaded_run_id",))
                                for t in ("dim_customer", "fact_orders", "fact_order_items", "fact_payments",
                                          "fact_shipments", "fact_returns", "fact_funnel_events")})  # fmt: skip
        finally:
            janitor.drop()
    assert digests[0] == digests[1]


def test_nothing_generated_lies_after_as_of(conn):
    """Every version is as the record stood at as_of: none would be rejected as future_timestamp
    when the history ends now (an order cancelled an hour after its failed payment is still PLACED
    when that hour is not over)."""
    gen = Generator(5, usd_rates(conn))
    ids = Ids()
    batch = Batch()
    gen.make_customers(ids, 200, AS_OF)
    gen.make_products(ids, 50, AS_OF)
    for n in range(20_000):
        gen.make_order(ids, batch, AS_OF - timedelta(minutes=n / 100), AS_OF)
    columns = {s: COLUMNS[s].index("updated_at") for s in ("orders", "order_items", "payments", "shipments")}
    assert all(row[i] <= AS_OF for s, i in columns.items() for row in batch.rows[s])
    assert any(row[3] == "CANCELLED" for row in batch.rows["orders"])


def test_seed_goes_through_staging_and_lands_realistic_rates(dsn):
    report = _seed(dsn, orders=6000)
    assert report.orders == 6000 and report.rejected == 0 and report.refreshes >= 2
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert staged_count(conn) == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 6000
        assert scalar(conn, "SELECT count(DISTINCT country_code) FROM globalcart.dim_customer") >= 10
        assert scalar(conn, "SELECT count(DISTINCT currency) FROM globalcart.fact_orders") >= 8
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") == report.refreshes
        assert scalar(conn, "SELECT min(order_ts) >= %s::timestamptz - interval '90 days' FROM globalcart.fact_orders",
                      AS_OF)  # fmt: skip
        snapshot_id = scalar(conn, "SELECT globalcart.snapshot_kpis('seeded')")
        kpi = dict(fetch(conn, "SELECT kpi_name, kpi_value FROM globalcart.kpi_snapshots WHERE snapshot_id = %s",
                         snapshot_id))  # fmt: skip
    assert 0.02 <= kpi["conversion_rate"] <= 0.05
    assert 0.60 <= kpi["cart_abandonment_rate"] <= 0.80
    assert 0.03 <= kpi["payment_failure_rate"] <= 0.08
    assert 0.05 <= kpi["sla_breach_rate"] <= 0.15
    assert 0.04 <= kpi["return_rate"] <= 0.10


def test_the_seed_generator_stays_within_ahead_orders_of_the_refresh(dsn):
    """The generator waits while ahead_orders orders it staged are not yet taken by a refresh call:
    no call claims more orders than that (a generator far ahead makes each call claim up to
    max_rows_per_run rows of each source, its orders' children falling into later calls), and
    nothing is lost on the way."""
    with psycopg.connect(dsn) as conn:
        report = seed_history(conn, dsn, orders=3000, seed=7, as_of=AS_OF, chunk_orders=100, ahead_orders=250)
    assert report.orders == 3000 and report.rejected == 0
    assert 100 <= report.most_ahead <= 250
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert staged_count(conn) == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == 3000
        claimed = [row[0] for row in fetch(conn, "SELECT (stats #>> '{sources,orders,claimed}')::int "
                                                 "FROM globalcart.etl_runs ORDER BY run_id")]  # fmt: skip
    assert sum(claimed) == 3000 and max(claimed) <= 250 and len(claimed) >= 3000 // 250


def test_seed_arguments_are_checked(conn):
    for bad in ({"chunk_orders": 0}, {"ahead_orders": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            seed_history(conn, "", orders=10, as_of=AS_OF, **bad)


def test_a_seed_larger_than_a_refresh_call_ends_with_staging_empty(dsn):
    """A call takes at most max_rows_per_run rows of each source: the seed calls the refresh until
    nothing is left (its time is the time to a warehouse that holds everything)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE globalcart.etl_settings SET value = '700' WHERE name = 'max_rows_per_run'")
    report = _seed(dsn, orders=3000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert staged_count(conn) == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") == report.orders == 3000
        assert report.refreshes == scalar(conn, "SELECT count(*) FROM globalcart.etl_runs") > 3000 // 700


def _versions(batch: Batch) -> dict[str, tuple[int, int]]:
    """Per source, (stale, duplicate) as the refresh must count them for this batch alone (its
    versions are all newer than what is stored): per key, rows older than the newest are stale,
    copies of the newest beyond the first are duplicates; a funnel event_id seen again is a duplicate."""
    counts = {}
    for source, rows in batch.rows.items():
        key = COLUMNS[source].index(KEY_OF[source])
        updated = COLUMNS[source].index("updated_at")
        versions: dict = {}
        for row in rows:
            versions.setdefault(row[key], []).append(row[updated])
        if source == "funnel_events":
            counts[source] = (0, sum(len(v) - 1 for v in versions.values()))
        else:
            stale = sum(1 for v in versions.values() for u in v if u < max(v))
            counts[source] = (stale, sum(v.count(max(v)) - 1 for v in versions.values()))
    return counts


def test_delta_has_every_kind_of_change_and_the_refresh_applies_it(dsn):
    _seed(dsn, orders=4000)
    with psycopg.connect(dsn) as conn:
        before = dict(fetch(conn, "SELECT order_status, count(*) FROM globalcart.fact_orders GROUP BY 1"))
        breached_before = {r[0] for r in fetch(conn, "SELECT shipment_id FROM globalcart.fact_shipments "
                                                     "WHERE sla_breached_flag")}  # fmt: skip
        since = scalar(conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'")
        batch, report = generate_delta(conn, since=since, until=since + timedelta(hours=6), seed=5, new_orders=300,
                                       duplicate_share=0.05, out_of_order_share=0.2, bad_rows=8)  # fmt: skip
        for kind, count in report.kinds.items():
            assert count > 0, kind
        conn.commit()
        copy_batch(conn, batch)
        summary = refresh(conn)
        conn.commit()
        after = dict(fetch(conn, "SELECT order_status, count(*) FROM globalcart.fact_orders GROUP BY 1"))
        breached_after = {r[0] for r in fetch(conn, "SELECT shipment_id FROM globalcart.fact_shipments "
                                                    "WHERE sla_breached_flag")}  # fmt: skip
        window = fetch(
            conn,
            """SELECT min(updated_at), max(updated_at) FROM (
                 SELECT updated_at FROM globalcart.fact_orders UNION ALL
                 SELECT updated_at FROM globalcart.fact_funnel_events) t WHERE updated_at > %s""",
            since,
        )

    assert summary["totals"]["rejected"] == 8  # the bad rows, one per source kind
    assert summary["derived"]["orders_returned"] == report.kinds["late returns"]
    assert after["RETURNED"] - before["RETURNED"] == report.kinds["late returns"]
    assert after.get("COMPLETED", 0) > before.get("COMPLETED", 0)
    # every shipment the delta delivered after its promise is breached now, and no other became so
    late = {r[0] for r in batch.rows["shipments"] if r[5] is not None and r[5] > r[4]}
    assert breached_after - breached_before == late - breached_before
    assert len(late - breached_before) >= report.kinds["shipments turned late"]
    # stale and duplicate counts are exactly what the batch holds: older versions of a key
    # (out of order, and their copies) are stale, further copies of the newest one duplicates
    for source, (stale, duplicate) in _versions(batch).items():
        assert (summary[source]["stale"], summary[source]["duplicate"]) == (stale, duplicate), source
    assert summary["orders"]["stale"] >= report.kinds["older versions (out of order)"] > 0
    assert summary["totals"]["duplicate"] + summary["totals"]["stale"] >= report.kinds["duplicates"] > 0
    assert summary["orders"]["inserted"] == report.kinds["new orders"]
    assert window[0][0] > since and window[0][1] <= since + timedelta(hours=6)  # updated_at inside the window


def test_delta_is_deterministic(dsn):
    _seed(dsn, orders=1500)
    with psycopg.connect(dsn) as conn:
        since = AS_OF
        first, _ = generate_delta(conn, since=since, until=since + timedelta(hours=2), seed=3, new_orders=50)
        second, _ = generate_delta(conn, since=since, until=since + timedelta(hours=2), seed=3, new_orders=50)
    assert first.rows == second.rows


def test_simulate_command_stages_and_reports(dsn):
    _seed(dsn, orders=1500)
    result = run_cli("simulate", "--orders", "40", "--bad-rows", "3", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "new orders" in result.stdout and "late returns" in result.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert staged_count(conn) > 40
        assert refresh(conn)["totals"]["rejected"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--since", "2026-11-02T00:00:00", "--until", "2026-11-01T00:00:00"], "must be before --until"),
        (["simulate", "--orders", "-5"], "negative"),
        (["simulate", "--since", "yesterday"], "is not a time"),
        (["simulate", "--duplicates", "1.5"], "between 0 and 1"),
        (["seed", "--orders", "-1"], "negative"),
        (["compare", "before", "no-such-label"], "no snapshot labelled 'no-such-label'"),
    ],
)
def test_bad_arguments_give_one_line_and_change_nothing(dsn, args, message):
    _seed(dsn, orders=300)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT globalcart.snapshot_kpis('before')")
        state = [table_digest(conn, f"stg_{s}") for s in SOURCES] + [table_digest(conn, "kpi_snapshots")]
    result = run_cli(*args, dsn=dsn)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in result.stderr
    assert len([line for line in lines if line.startswith("globalcart") or "error" in line]) == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert [table_digest(conn, f"stg_{s}") for s in SOURCES] + [table_digest(conn, "kpi_snapshots")] == state
