"""docs/contract.md §5.5: globalcart.purge_history() deletes etl_runs, etl_rejects and kpi_snapshots rows
older than history_retention (90 days) and audit rows older than audit_retention (default: kept)."""

import psycopg
import pytest
from helpers import order, refresh, scalar, stage, ts

HISTORY = ("etl_runs", "etl_rejects", "kpi_snapshots")
AGE_COLUMN = {"etl_runs": "started_at", "etl_rejects": "rejected_at", "kpi_snapshots": "taken_at"}


def _history(conn) -> None:
    """Two runs with a reject, an audit row and a snapshot each; the first run made 100 days old."""
    for n in (1, 2):
        stage(conn, "orders", [order(n), order(n, order_status="PAID", updated_at=ts(5)), order(100 + n, currency="X")])
        refresh(conn)
        stage(conn, "orders", [order(n, order_status="SHIPPED", updated_at=ts(10))])
        refresh(conn)
        conn.execute("SELECT globalcart.snapshot_kpis(%s)", (f"s{n}",))
    conn.execute("UPDATE globalcart.etl_runs SET started_at = started_at - interval '100 days' WHERE run_id <= 2")
    conn.execute("UPDATE globalcart.etl_rejects SET rejected_at = rejected_at - interval '100 days' WHERE run_id <= 2")
    conn.execute("UPDATE globalcart.kpi_snapshots SET taken_at = taken_at - interval '100 days' WHERE label = 's1'")
    conn.execute(
        "UPDATE globalcart.audit_fact_orders SET audited_at = audited_at - interval '100 days' WHERE audit_run_id <= 2"
    )


def test_purge_deletes_history_older_than_the_retention_and_keeps_audit_by_default(conn):
    _history(conn)
    counts_before = {t: scalar(conn, f"SELECT count(*) FROM globalcart.{t}") for t in HISTORY}
    result = scalar(conn, "SELECT globalcart.purge_history()")
    # and of the attribution (docs/contract.md §8), the row of run 1's new orders: run 3's adds to it no more
    assert result == {"etl_runs": 2, "etl_rejects": 1, "kpi_snapshots": counts_before["kpi_snapshots"] // 2,
                      "kpi_attribution": 1}  # fmt: skip
    for table in HISTORY:
        assert scalar(conn, f"SELECT count(*) FROM globalcart.{table}") == counts_before[table] - result[table]
        assert (
            scalar(
                conn, f"SELECT count(*) FROM globalcart.{table} WHERE {AGE_COLUMN[table]} < now() - interval '90 days'"
            )
            == 0
        )
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 2  # audit: kept


def test_audit_retention_deletes_old_audit_rows_of_every_audit_table(conn):
    _history(conn)
    conn.execute("UPDATE globalcart.etl_settings SET value = '30 days' WHERE name = 'audit_retention'")
    result = scalar(conn, "SELECT globalcart.purge_history()")
    assert result["audit_fact_orders"] == 1
    audit_tables = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'globalcart'::regnamespace "
            "AND relkind = 'r' AND relname LIKE 'audit\\_%'"
        ).fetchall()
    ]
    assert set(audit_tables) <= set(result) and len(audit_tables) >= 10
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_orders") == 1


def test_history_retention_is_a_setting(conn):
    _history(conn)
    conn.execute("UPDATE globalcart.etl_settings SET value = '1000 days' WHERE name = 'history_retention'")
    assert scalar(conn, "SELECT globalcart.purge_history()") == {"etl_runs": 0, "etl_rejects": 0, "kpi_snapshots": 0,
                                                                   "kpi_attribution": 0}


@pytest.mark.parametrize(("setting", "value"), [("history_retention", "a while"), ("audit_retention", "forever")])
def test_an_unparsable_retention_is_an_error_naming_it(conn, setting, value):
    conn.execute("UPDATE globalcart.etl_settings SET value = %s WHERE name = %s", (value, setting))
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT globalcart.purge_history()")
    assert err.value.diag.sqlstate == "GC001" and setting in err.value.diag.message_primary
