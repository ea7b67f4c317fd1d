"""Citus (distributed PostgreSQL): what ``migrate`` needs on a coordinator, and ``distribute``.

On a Citus coordinator with workers, the warehouse takes this layout (docs/citus.md):
- the dimensions (``globalcart.dim_*``) become reference tables, a copy on every node;
- every fact of the source registry (``globalcart.etl_sources``) is distributed by the first column
  of its primary key — the order-grain facts by ``order_id``, colocated with ``fact_orders``, the
  funnel by ``session_id`` — and each fact's audit table (``audit_<fact>``) with it, colocated, so
  that the audit trigger on a shard writes the colocated audit shard on the same node; so are the
  refresh's work tables of those sources (``work_<source>``) and of the orders a batch touches
  (``work_kpi_orders``), and the per-order state (``kpi_order_state``: the order directory), so that
  each join of a batch with a fact runs on the shards of its keys;
- the rest stays local on the coordinator: staging, the bookkeeping (``etl_*``), the KPI summaries
  and snapshots, the dimensions' audit tables (partitioned by month, which a reference table cannot
  be).
The layout is generated from the registry and the catalog, never listed by hand.

Citus connects to the workers as the role that runs a distributed statement. The routine files are
applied as ``globalcart_owner`` and the refresh runs with its rights (SECURITY DEFINER), so that
role may log in on the workers (only there: on the coordinator nobody logs in as it); who may
reach the workers at all is their pg_hba.conf's business (the coordinator's address alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from driver.core import db
from driver.core.cluster import prepare_workers, state
from driver.core.db import OWNER
from driver.core.errors import DriverError, first_line


@dataclass
class Placement:
    """Where one table goes on Citus: a reference table, or distributed by a column beside another."""
    table: str  # globalcart.<name>
    kind: str  # 'reference' or 'distributed'
    column: str | None = None  # the distribution column
    colocate_with: str | None = None  # the table whose shards it shares


def layout(conn: psycopg.Connection) -> list[Placement]:
    """The distributed layout of this warehouse, from the registry and the catalog, in the order
    it is created (a table before those colocated with it). Reads in the caller's transaction."""
    placements = [
        Placement(f"globalcart.{name}", "reference")
        for (name,) in conn.execute(
            """SELECT c.relname FROM pg_class c
                WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
                  AND c.relname LIKE 'dim\\_%'
                ORDER BY c.relname"""
        ).fetchall()
    ]
    reference = {p.table for p in placements}
    first_by_column: dict[str, str] = {}

    def exists(table: str) -> bool:
        return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0])

    for source in db.sources(conn):
        table = f"globalcart.{source.fact_table}"
        if table in reference:
            continue  # (a dimension's work table stays with the staging, on the coordinator)
        column = source.primary_key[0]
        anchor = first_by_column.setdefault(column, table)
        placements.append(Placement(table, "distributed", column, None if anchor == table else anchor))
        for companion in (f"globalcart.audit_{source.fact_table}", f"globalcart.work_{source.name}"):
            if exists(companion):  # its audit and the refresh's work table, beside it
                placements.append(Placement(companion, "distributed", column, anchor))
    # the refresh's other work tables (the orders a batch touches) and its per-order state (the order
    # directory, joined with the batch and the facts), by the first column of their key
    for name, column in conn.execute(
        """SELECT c.oid::regclass::text, a.attname
             FROM pg_class c
             JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
            WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'r'
              AND (c.relname LIKE 'work\\_%' OR c.relname = 'kpi_order_state')
            ORDER BY 1"""
    ).fetchall():
        if column in first_by_column and name not in {p.table for p in placements}:
            placements.append(Placement(name, "distributed", column, first_by_column[column]))
    return placements


DATABASE_SETTINGS = {
    # the audit triggers on the facts fire on the shards (each writes its colocated audit shard)
    "citus.enable_unsafe_triggers": "on",
}


@dataclass
class DistributeReport:
    """The tables distribute placed now and those already placed."""
    created: list[Placement]
    already: list[Placement]


SHARDS_PER_WORKER = 2

# migrate's file that (re)generates the as-of functions; distribute reruns it for the new layout
AS_OF_FILE = Path(__file__).resolve().parents[2] / "db" / "views" / "as_of.sql"


def distribute(conn: psycopg.Connection, shard_count: int | None = None) -> DistributeReport:
    """Turn an installed warehouse into the distributed layout; what is distributed already stays
    (idempotent). The tables in one transaction (on an error nothing has changed), then the
    dimensions' audit triggers regenerated for it.

    ``shard_count``: shards of each distributed table (default: SHARDS_PER_WORKER per worker). Each
    statement of the refresh that joins a batch with a fact runs once per shard: a refresh of one
    order took 0.14 s with 8 shards on two workers (2 cores), 0.11 s with 4 (README).
    A table already distributed keeps its shards."""
    found = state(conn)
    if not found.installed:
        raise DriverError(
            "Citus is not installed in this database: install it on every node, CREATE EXTENSION citus; here, "
            'add the workers (citus_add_node), then run distribute again (docs/citus.md).'
        )
    if not found.coordinator:
        raise DriverError("this is a Citus worker: run distribute on the coordinator.")
    if not found.workers:
        raise DriverError(
            "Citus has no workers here: add them on the coordinator with SELECT citus_add_node('host', port); "
            "then run distribute again."
        )
    db.require_schema(conn)
    prepare_workers(conn)
    database = conn.execute("SELECT current_database()").fetchone()[0]
    current = {
        str(name): (str(kind), column)
        for name, kind, column in conn.execute(
            "SELECT table_name::text, citus_table_type, distribution_column FROM citus_tables"
        ).fetchall()
    }
    conn.commit()
    report = DistributeReport([], [])
    try:
        with conn.transaction():
            # (one connection a node: the function DDL at the end may follow the shards' creation)
            conn.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            shards = shard_count or SHARDS_PER_WORKER * found.workers
            conn.execute("SELECT set_config('citus.shard_count', %s, true)", (str(shards),))
            for setting, value in DATABASE_SETTINGS.items():
                conn.execute(f'ALTER DATABASE "{database}" SET {setting} = {value}')
                conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
            for placement in layout(conn):
                have = current.get(placement.table)
                if have is not None:
                    if have != (placement.kind, placement.column or "<none>"):
                        raise DriverError(
                            f"{placement.table} is a Citus {have[0]} table already ({have[1]}), not "
                            f"{placement.kind}{' by ' + placement.column if placement.column else ''}: undistribute "
                            "it (SELECT undistribute_table(...)) and run distribute again."
                        )
                    report.already.append(placement)
                    continue
                if placement.kind == "reference":
                    conn.execute("SELECT create_reference_table(%s)", (placement.table,))
                else:
                    conn.execute(
                        "SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                        (placement.table, placement.column, placement.colocate_with or "default"),
                    )
                report.created.append(placement)
    except psycopg.Error as exc:
        raise DriverError(f"distribute failed, nothing changed: {first_line(exc)}") from None
    # The audit triggers and the as-of functions, regenerated for the layout (install_audit_trigger:
    # a dimension's audit only on the coordinator's copy, a fact's deletes row by row; install_as_of:
    # PL/pgSQL over Citus tables). As migrate does, as the owner; in a transaction of its own, the
    # tables being distributed now.
    try:
        with conn.transaction():
            for setting, value in DATABASE_SETTINGS.items():  # (this session began before the ALTER DATABASE)
                conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
            conn.execute(f"SET LOCAL ROLE {OWNER}")
            conn.execute(
                "SELECT globalcart.install_audit_trigger(t.relname) FROM pg_class t "
                "WHERE t.oid = ANY(%s::regclass[]) AND to_regclass('globalcart.audit_' || t.relname) IS NOT NULL",
                ([p.table for p in [*report.created, *report.already]],),
            )
            conn.execute(AS_OF_FILE.read_text())
    except psycopg.Error as exc:
        raise DriverError(
            f"the tables are distributed, but their audit triggers and as-of functions could not be regenerated "
            f"({first_line(exc)}): run migrate, which regenerates them."
        ) from None
    return report
