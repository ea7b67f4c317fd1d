"""docs/contract.md §5.4: globalcart.pipeline_health, one row per source, and `globalcart health`, which
prints it and exits non-zero when a source is lagging or failing (for monitoring probes)."""

import json

import psycopg
from helpers import SOURCES, customer, item, order, refresh, run_cli, scalar, stage

COLUMNS = [
    "source_name",
    "staged_rows",
    "deferred_rows",
    "oldest_staged_at",
    "watermark_ts",
    "last_ok_run_at",
    "last_failed_run_at",
    "last_error",
    "rejected_24h",
    "status",
]


def _health(conn) -> dict[str, dict]:
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM globalcart.pipeline_health")
        names = [c.name for c in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def test_one_row_per_source_with_the_contract_columns(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM globalcart.pipeline_health")
        assert [c.name for c in cur.description][: len(COLUMNS)] == COLUMNS
        assert [r[0] for r in cur.fetchall()] == list(SOURCES)
    health = _health(conn)
    assert {h["status"] for h in health.values()} == {"ok"}
    assert all(h["staged_rows"] == 0 and h["last_ok_run_at"] is None for h in health.values())


def test_staged_deferred_watermark_rejects_and_runs(conn):
    stage(conn, "orders", [order(1), order(2, currency="XXX")])
    stage(conn, "order_items", [item(1, 1), item(2, 99)])
    stage(conn, "customers", [customer(1)])
    before = _health(conn)
    assert (before["orders"]["staged_rows"], before["order_items"]["staged_rows"]) == (2, 2)
    assert before["orders"]["oldest_staged_at"] is not None

    summary = refresh(conn)
    health = _health(conn)
    assert (health["order_items"]["staged_rows"], health["order_items"]["deferred_rows"]) == (0, 1)
    assert health["order_items"]["oldest_staged_at"] is None  # the deferred row aside
    assert health["orders"]["rejected_24h"] == 1 and health["customers"]["rejected_24h"] == 0
    assert health["orders"]["watermark_ts"] == scalar(
        conn, "SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'"
    )
    assert health["orders"]["last_ok_run_at"] == scalar(
        conn, "SELECT finished_at FROM globalcart.etl_runs WHERE run_id = %s", summary["run_id"]
    )
    assert all(h["status"] == "ok" and h["last_failed_run_at"] is None for h in health.values())


def test_a_row_staged_longer_than_freshness_alert_makes_its_source_lagging(conn):
    stage(conn, "orders", [order(1)])
    conn.execute("UPDATE globalcart.stg_orders SET ingested_at = now() - interval '6 minutes'")
    health = _health(conn)
    assert health["orders"]["status"] == "lagging"
    assert {h["status"] for s, h in health.items() if s != "orders"} == {"ok"}
    conn.execute("UPDATE globalcart.etl_settings SET value = '10 minutes' WHERE name = 'freshness_alert'")
    assert _health(conn)["orders"]["status"] == "ok"


def test_deferred_rows_do_not_make_a_source_lagging(conn):
    stage(conn, "order_items", [item(1, 99)])
    conn.execute("UPDATE globalcart.stg_order_items SET ingested_at = now() - interval '1 hour'")
    refresh(conn)  # deferred: waits for order 99
    health = _health(conn)["order_items"]
    assert (health["deferred_rows"], health["status"]) == (1, "ok")


def test_a_failed_latest_run_makes_every_source_failing_until_a_run_succeeds(conn):
    conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
    stage(conn, "orders", [order(1)])
    failed = refresh(conn)
    health = _health(conn)
    assert {h["status"] for h in health.values()} == {"failing"}
    assert health["payments"]["last_error"] == f"GC001: {failed['error']['message']}"
    assert health["payments"]["last_failed_run_at"] is not None

    conn.execute("UPDATE globalcart.etl_settings SET value = '10 seconds' WHERE name = 'lock_timeout'")
    refresh(conn)
    health = _health(conn)
    assert {h["status"] for h in health.values()} == {"ok"}
    assert health["orders"]["last_error"] is not None  # still told, with its time, but no longer failing


def test_health_command_prints_the_view_and_exits_4_when_not_healthy(dsn):
    ok = run_cli("health", dsn=dsn)
    assert ok.returncode == 0, ok.stderr
    assert "healthy" in ok.stdout and "orders" in ok.stdout and "last ok run: none" in ok.stdout

    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(1)])
        conn.execute("UPDATE globalcart.stg_orders SET ingested_at = now() - interval '1 hour'")
    lagging = run_cli("health", dsn=dsn)
    assert lagging.returncode == 4
    assert "not healthy: orders" in lagging.stdout and "lagging" in lagging.stdout

    as_json = run_cli("health", "--json", dsn=dsn)
    assert as_json.returncode == 4
    rows = json.loads(as_json.stdout)
    assert [r["source_name"] for r in rows] == list(SOURCES) and rows[2]["status"] == "lagging"
    assert set(COLUMNS) <= set(rows[0])

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE globalcart.etl_settings SET value = 'soon' WHERE name = 'lock_timeout'")
        refresh(conn)
    failing = run_cli("health", dsn=dsn)
    assert failing.returncode == 4 and "failing" in failing.stdout and "GC001" in failing.stdout


def test_health_command_against_an_unreachable_server_or_no_schema_is_one_line(empty_dsn):
    from driver.servers.embedded import free_port

    down = run_cli("health", env_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    assert down.returncode == 1
    [line] = down.stderr.strip().splitlines()
    assert "cannot connect" in line and "Traceback" not in down.stderr

    bare = run_cli("health", dsn=empty_dsn)
    assert bare.returncode == 1
    [line] = bare.stderr.strip().splitlines()
    assert "not installed" in line and "migrate" in line


def test_an_unparsable_freshness_alert_is_an_error_naming_it(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE globalcart.etl_settings SET value = 'quickly' WHERE name = 'freshness_alert'")
    result = run_cli("health", dsn=dsn)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "GC001" in line and "freshness_alert" in line
