"""Citus (`globalcart distribute`, README "Scale out on Citus"): a coordinator and two workers on
127.0.0.1, started for this module. The layout distribute makes (generated from the registry),
what it refuses, that the data and the KPIs stay what they were, that it and migrate can run again
on the distributed warehouse, and the audit of facts and dimensions there.

Without Citus installed these tests skip with one line saying how to install it — except under CI
(CI=true, as .ci/run sets), where a missing Citus fails them."""

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from helpers import fetch, run_cli, scalar, table_digest
from servers import CITUS_INSTALL, CitusCluster, citus_installed, start_citus_cluster

from driver import citus, db
from driver.errors import DriverError
from driver.migrate import migrate
from driver.seed import seed_history

_numbers = itertools.count(1)
CRON_DB = "gc_citus_cron"  # cron.database_name of the coordinator


@pytest.fixture(scope="module")
def cluster() -> Iterator[CitusCluster]:
    if not citus_installed():
        message = f"Citus is not installed: {CITUS_INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    started = start_citus_cluster(workers=2, cron_database=CRON_DB)
    try:
        yield started
    finally:
        started.stop()


def _warehouse(cluster: CitusCluster, orders: int = 0) -> str:
    """A migrated warehouse on the cluster (tables still local), seeded with ``orders`` orders."""
    dsn = cluster.create_database(f"gc_citus_{next(_numbers)}")
    with psycopg.connect(dsn) as conn:
        migrate(conn, with_cron=False)
        if orders:
            seed_history(conn, dsn, orders=orders, seed=7, as_of=datetime(2026, 6, 1, tzinfo=UTC), days=60)
    return dsn


def _contents(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Every dimension, fact and audit table, row by row."""
    tables = [r[0] for r in fetch(conn, "SELECT table_name FROM globalcart.history_tables()")]
    return {t: table_digest(conn, t) for t in [*tables, *(f"audit_{t}" for t in tables)]}


def _kpis(conn: psycopg.Connection) -> list[tuple]:
    return fetch(conn, "SELECT * FROM globalcart.kpi_values() ORDER BY 1")


@pytest.mark.citus
def test_distribute_lays_out_the_warehouse_keeps_every_row_and_audits_once(cluster: CitusCluster) -> None:
    dsn = _warehouse(cluster, orders=300)
    with psycopg.connect(dsn) as conn:
        before, kpis_before = _contents(conn), _kpis(conn)
        assert sum(map(len, before.values())) > 3000
        sources = db.sources(conn)

    result = run_cli("distribute", "--preview", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert "distributed: 16 table(s) now, 0 already; the rest stays local" in result.stdout

    with psycopg.connect(dsn) as conn:
        placed = {
            name: (kind, column, colocation)
            for name, kind, column, colocation in fetch(
                conn,
                "SELECT table_name::text, citus_table_type, distribution_column, colocation_id FROM citus_tables "
                "WHERE NOT (SELECT relispartition FROM pg_class WHERE oid = table_name)",
            )
        }
        dims = [
            r[0]
            for r in fetch(conn, "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'r' AND "
                                 "c.relnamespace = 'globalcart'::regnamespace AND left(c.relname, 4) = 'dim_'")
        ]  # fmt: skip
        assert len(dims) == 4
        for dim in dims:
            assert placed.pop(dim)[0] == "reference", dim
        orders_group = placed["globalcart.fact_orders"][2]
        for source in sources:
            if source.fact_table.startswith("dim_"):
                continue
            for table in (source.fact_table, f"audit_{source.fact_table}"):
                kind, column, colocation = placed.pop(f"globalcart.{table}")
                assert (kind, column) == ("distributed", source.primary_key[0]), table
                if source.primary_key[0] == "order_id":
                    assert colocation == orders_group, table
        assert placed == {}, "staging, bookkeeping, summaries and the dimensions' audit stay local"
        assert scalar(conn, "SELECT count(*) FROM citus_shards WHERE table_name = 'globalcart.fact_orders'::regclass "
                            "AND nodeport <> %s", cluster.coordinator.port) > 0  # fmt: skip
        # the same rows, now read from the shards; the same KPIs
        assert _contents(conn) == before
        assert _kpis(conn) == kpis_before

    again = run_cli("distribute", "--preview", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert "distributed: 0 table(s) now, 16 already" in again.stdout
    migrated = run_cli("migrate", "--no-cron", dsn=dsn)
    assert migrated.returncode == 0, migrated.stderr
    assert "function/trigger file(s) re-applied" in migrated.stdout

    # facts are audited on their shards, a dimension once, on the coordinator
    with psycopg.connect(dsn, autocommit=True) as conn:
        order_id = scalar(conn, "SELECT min(order_id) FROM globalcart.fact_orders")
        conn.execute("UPDATE globalcart.fact_orders SET net_amount = net_amount + 1 WHERE order_id = %s", (order_id,))
        conn.execute("DELETE FROM globalcart.fact_payments WHERE order_id = %s", (order_id,))
        assert fetch(conn, "SELECT audit_action, count(*) FROM globalcart.audit_fact_orders WHERE order_id = %s "
                           "GROUP BY 1", order_id) == [("UPDATE", 1)]  # fmt: skip
        assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_payments WHERE order_id = %s "
                            "AND audit_action = 'DELETE'", order_id) >= 1  # fmt: skip

        # a dimension is a copy on every node; its audit row is written once, on the coordinator
        customer_id = scalar(conn, "SELECT min(customer_id) FROM globalcart.dim_customer")
        conn.execute("UPDATE globalcart.dim_customer SET segment = 'VIP' WHERE customer_id = %s", (customer_id,))
        assert scalar(conn, "SELECT count(*) FROM globalcart.audit_dim_customer WHERE customer_id = %s",
                      customer_id) == 1  # fmt: skip
        copies = fetch(conn, "SELECT result FROM run_command_on_all_nodes($$SELECT segment "
                             f"FROM globalcart.dim_customer WHERE customer_id = {int(customer_id)}$$)")  # fmt: skip
        assert copies == [("VIP",)] * 3


@pytest.mark.citus
def test_migrate_creates_pg_cron_on_the_coordinator_only(cluster: CitusCluster) -> None:
    dsn = cluster.create_database(CRON_DB)
    migrated = run_cli("migrate", dsn=dsn)
    assert migrated.returncode == 0, migrated.stderr
    assert f"pg_cron: ready in database '{CRON_DB}'." in migrated.stdout
    with psycopg.connect(dsn) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 1
        on_workers = fetch(conn, "SELECT result FROM run_command_on_workers($$SELECT count(*) FROM pg_extension "
                                 "WHERE extname = 'pg_cron'$$)")  # fmt: skip
        assert on_workers == [("0",)] * 2
    again = run_cli("migrate", dsn=dsn)
    assert again.returncode == 0, again.stderr


@pytest.mark.citus
def test_distribute_refuses_where_citus_has_no_workers(cluster: CitusCluster) -> None:
    dsn = cluster.create_database(f"gc_citus_{next(_numbers)}", add_workers=False)
    with psycopg.connect(dsn) as conn:
        migrate(conn, with_cron=False)
    result = run_cli("distribute", "--preview", dsn=dsn)
    assert result.returncode == 1
    assert result.stderr.startswith("globalcart: Citus has no workers here: add them on the coordinator")
    with psycopg.connect(dsn) as conn:
        assert scalar(conn, "SELECT count(*) FROM citus_tables") == 0


@pytest.mark.citus
def test_a_second_warehouse_on_the_cluster_migrates_and_distribute_refuses_on_a_worker(
    cluster: CitusCluster,
) -> None:
    name = f"gc_citus_{next(_numbers)}"
    dsn = cluster.create_database(name)
    # (Citus copies globalcart_owner into each database's metadata afresh, NOLOGIN: migrate must
    # let it log in on the workers again, or its routine files fail to reach them)
    migrated = run_cli("migrate", "--no-cron", dsn=dsn)
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(dsn) as conn:
        logins = fetch(conn, "SELECT result FROM run_command_on_workers($$SELECT rolcanlogin FROM pg_roles "
                             "WHERE rolname = 'globalcart_owner'$$)")  # fmt: skip
        assert logins == [("t",)] * 2
        assert scalar(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'globalcart_owner'") is False
    result = run_cli("distribute", "--preview", dsn=cluster.workers[0].dsn(name))
    assert result.returncode == 1
    assert result.stderr == "globalcart: this is a Citus worker: run distribute on the coordinator.\n"


def test_distribute_refuses_without_citus_and_without_preview(dsn: str) -> None:
    result = run_cli("distribute", "--preview", dsn=dsn)
    assert result.returncode == 1
    assert result.stderr.startswith("globalcart: Citus is not installed in this database")
    assert result.stderr.count("\n") == 1
    gated = run_cli("distribute", dsn=dsn)
    assert gated.returncode == 1
    assert "the refresh does not run on a distributed warehouse yet" in gated.stderr
    with psycopg.connect(dsn) as conn:
        assert citus.state(conn).installed is False
        with pytest.raises(DriverError, match="Citus is not installed"):
            citus.distribute(conn)


def test_layout_follows_the_registry(dsn: str) -> None:
    """The layout is generated: a new order-grain source would be distributed with fact_orders."""
    with psycopg.connect(dsn) as conn:
        placements = {p.table: p for p in citus.layout(conn)}
    assert placements["globalcart.fact_orders"].colocate_with is None
    assert placements["globalcart.fact_returns"].colocate_with == "globalcart.fact_orders"
    assert placements["globalcart.audit_fact_funnel_events"].column == "session_id"
    assert placements["globalcart.dim_date"].kind == "reference"
    assert list(placements).index("globalcart.fact_orders") < list(placements).index("globalcart.fact_payments")
