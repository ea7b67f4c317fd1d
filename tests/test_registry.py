"""The one list of sources: globalcart.etl_sources is docs/contract.md §1, and everything that repeats
per source follows it — the refresh's steps, the work tables, the staging counts, the driver."""

import psycopg
import pytest
from helpers import CONTRACT_SOURCES, fetch, scalar

from driver.core import db
from driver.simulation.generator import COLUMNS

BOOKKEEPING = {"stg_id", "ingested_at", "deferrals", "deleted"}


def test_the_registry_is_the_contract_table(conn):
    rows = fetch(conn, "SELECT source_name, staging_table, fact_table, key_column FROM globalcart.etl_sources "
                       "ORDER BY apply_order")  # fmt: skip
    assert rows == [(source, *tables) for source, tables in CONTRACT_SOURCES.items()]
    children = {r[0] for r in fetch(conn, "SELECT source_name FROM globalcart.etl_sources WHERE waits_for_order")}
    assert children == {"order_items", "payments", "shipments", "returns"}


def test_primary_keys_in_the_registry_are_the_facts_primary_keys(conn):
    for source in db.sources(conn):
        columns = fetch(
            conn,
            """SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n""",
            f"globalcart.{source.fact_table}",
        )
        assert tuple(c for (c,) in columns) == source.primary_key, source.name


def test_every_source_has_its_refresh_step_and_the_generator_its_columns(conn):
    """run_source_step() dispatches every registered source (and only those) to its business rules;
    the simulator's row layout is the staging table's business columns."""
    for source in db.sources(conn):
        with conn.transaction():
            conn.execute("SELECT globalcart.create_work_tables()")
            stats = scalar(conn, "SELECT globalcart.run_source_step(%s, 0, now(), now(), now())", source.name)
            assert stats["claimed"] == 0, source.name
        computed = {
            name
            for (name,) in fetch(
                conn,
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attgenerated <> ''",
                f"globalcart.{source.fact_table}",
            )
        }
        staging = [
            name
            for (name,) in fetch(conn, "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                                       "AND NOT attisdropped ORDER BY attnum", f"globalcart.{source.staging_table}")
            if name not in BOOKKEEPING | computed  # sla_breached_flag: the warehouse computes it
        ]  # fmt: skip
        assert list(COLUMNS[source.name]) == staging, source.name
    assert list(COLUMNS) == [s.name for s in db.sources(conn)]
    with pytest.raises(psycopg.Error) as err, conn.transaction():
        conn.execute("SELECT globalcart.run_source_step('wishlists', 0, now(), now(), now())")
    assert err.value.diag.sqlstate == "GC006"


def test_work_tables_and_staging_counts_follow_the_registry(conn):
    names = [s.name for s in db.sources(conn)]
    assert [r[0] for r in fetch(conn, "SELECT source_name FROM globalcart.staged_rows()")] == names
    with conn.transaction():
        conn.execute("SELECT globalcart.create_work_tables()")
        for name in names:
            assert scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", f"pg_temp.gc_claim_{name}"), name
    # the winners' tables of the schema (migration 0008): the staging table's columns, an order-grain
    # child's also its order's order_ts — a migration that changes a staging table must change them too
    # (in any order: the refresh names the columns it writes)
    for source in db.sources(conn):
        columns = "SELECT attname, atttypid::regtype::text FROM pg_attribute WHERE attrelid = %s::regclass " \
                  "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"  # fmt: skip
        expected = fetch(conn, columns, f"globalcart.{source.staging_table}")
        if source.waits_for_order:
            expected.append(("order_ts", "timestamp with time zone"))
        if source.name == "orders":  # where each order was stored before the batch (migration 0010)
            expected.append(("stored_ts", "timestamp with time zone"))
        assert sorted(fetch(conn, columns, f"globalcart.work_{source.name}")) == sorted(expected), source.name
        assert scalar(conn, "SELECT relpersistence FROM pg_class WHERE oid = %s::regclass",
                      f"globalcart.work_{source.name}") == "u"  # fmt: skip


def test_the_claim_bound_reads_only_registered_staging_tables(conn):
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT globalcart.claim_bound('fact_orders', 10)")
    assert err.value.diag.sqlstate == "GC006"
    assert scalar(conn, "SELECT globalcart.claim_bound('stg_orders', 10)") is None  # empty: nothing to claim
