"""The CDC feed (docs/cdc.md): ``globalcart cdc attach | status |
detach``.

``attach`` makes the warehouse a logical replication subscriber of the source's publication
globalcart_cdc: a bronze mirror of each published table (the source's schema and table name —
logical replication matches tables by both — with its columns, types and primary key, read from
the source's catalog; recorded in globalcart.etl_cdc_tables), a trigger on each that stages
every applied change (globalcart.install_bronze_trigger: enabled ALWAYS, so that it fires in the
apply worker, in the transaction that applies the source's commit — exactly once, across
restarts), and the subscription. The replication slot is created on the source first, through a
connection of the driver, and the subscription uses it (``create_slot = false``): that is how a
source in another database of the same server must be done (CREATE SUBSCRIPTION would wait for
itself), and it works the same for two servers. The existing rows of the source are copied
first (the subscription's initial copy fires the same triggers), then changes stream.

``status`` shows the subscription's state as the warehouse sees it (globalcart.cdc_feed()) and,
from the source, its slot: whether it exists and is active, and how many bytes of WAL it holds
that the warehouse has not confirmed. ``detach`` disables and drops the subscription, drops the
slot on the source and the bronze tables (and their schema, when nothing else is in it); rows
already staged stay.

CREATE SUBSCRIPTION needs a superuser in PostgreSQL 15: attach and detach run as one (the
subscription's apply worker then runs as that superuser, and so do the bronze triggers).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from driver.core import db
from driver.core.errors import DriverError, first_line
from driver.simulation.shop import PUBLICATION

SUBSCRIPTION = "globalcart_cdc"


def slot_name(warehouse_db: str) -> str:
    """The replication slot of the warehouse database's subscription: one per warehouse, named
    after it (lower case letters, digits and underscores, as slot names must be)."""
    return "globalcart_cdc_" + re.sub(r"[^a-z0-9_]", "_", warehouse_db.lower())[:40]


def _source(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name=db.APPLICATION_NAME)
    except psycopg.Error as exc:
        raise DriverError(
            f"cannot connect to the source {db.describe_target(dsn)}: {first_line(exc)}. Check --source-dsn."
        ) from None


def _require_superuser(conn: psycopg.Connection, what: str) -> None:
    if not db.is_superuser(conn):
        raise DriverError(f"{what} needs a superuser of the warehouse's server (CREATE SUBSCRIPTION does in "
                          "PostgreSQL 15): connect as one with --dsn.")  # fmt: skip


def _subscription(conn: psycopg.Connection) -> tuple[str, str | None] | None:
    """(the source's conninfo, slot name) of this database's subscription, or None."""
    row = conn.execute(
        "SELECT subconninfo, subslotname FROM pg_subscription "
        "WHERE subname = %s AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (SUBSCRIPTION,),
    ).fetchone()
    return (row[0], row[1]) if row else None


@dataclass
class Published:
    """A table of the source's publication: its name and columns."""
    schema: str
    table: str
    columns: list[tuple[str, str, bool]]  # name, type, not null
    key: list[str]


def published_tables(source: psycopg.Connection) -> list[Published]:
    """The tables of the source's publication, with their columns and primary keys."""
    tables = []
    for schema, table in source.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY tablename", (PUBLICATION,)
    ).fetchall():
        oid = source.execute("SELECT %s::regclass::oid", (f'"{schema}"."{table}"',)).fetchone()[0]
        columns = source.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        ).fetchall()
        key = [
            r[0]
            for r in source.execute(
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.n",
                (oid,),
            ).fetchall()
        ]
        tables.append(Published(schema, table, columns, key))
    return tables


@dataclass
class AttachReport:
    """What cdc attach made: the bronze tables, the slot, whether the initial copy is done."""
    tables: list[str] = field(default_factory=list)
    slot: str = ""
    copied: bool = False  # the initial copy of every table finished before attach returned


def _wait_for_initial_copy(conn: psycopg.Connection, timeout: float) -> bool:
    """Wait until every table's initial copy is done (True), or ``timeout`` seconds (False)."""
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT coalesce((SELECT tables_syncing FROM globalcart.cdc_feed()), 0)").fetchone()[0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def attach(conn: psycopg.Connection, source_dsn: str, copy_timeout: float = 600) -> AttachReport:
    """Subscribe the warehouse (``conn``, autocommit) to the source's publication, and wait up to
    ``copy_timeout`` seconds for the initial copy of the source's rows."""
    _require_superuser(conn, "cdc attach")
    db.require_schema(conn)
    if _subscription(conn):
        raise DriverError(f"this warehouse is attached already (subscription {SUBSCRIPTION}): globalcart cdc status "
                          "shows it; globalcart cdc detach removes it.")  # fmt: skip
    sources = {s.name: s for s in db.sources(conn)}
    deletes = dict(conn.execute("SELECT source_name, deletes FROM globalcart.etl_sources").fetchall())
    report = AttachReport(slot=slot_name(conn.info.dbname))
    with _source(source_dsn) as source:
        wal_level = source.execute("SHOW wal_level").fetchone()[0]
        if wal_level != "logical":
            raise DriverError(f"the source has wal_level = {wal_level}: set wal_level = logical there (ALTER SYSTEM "
                              "SET wal_level = logical) and restart it.")  # fmt: skip
        tables = published_tables(source)
        if not tables:
            raise DriverError(f"the source has no publication {PUBLICATION} (or it publishes no table): run "
                              "globalcart source init --dsn <source> there, or CREATE PUBLICATION for your "
                              "tables.")  # fmt: skip
        unknown = [t.table for t in tables if t.table not in sources or not deletes.get(t.table)]
        if unknown:
            known = ", ".join(s for s in sources if deletes.get(s))
            raise DriverError(f"the publication {PUBLICATION} has tables the warehouse has no source for: "
                              f"{', '.join(unknown)} (sources: {known}).")  # fmt: skip
        keyless = [t.table for t in tables if not t.key]
        if keyless:
            raise DriverError(f"published tables without a primary key cannot be mirrored: {', '.join(keyless)}.")
        taken = [f"{t.schema}.{t.table}" for t in tables
                 if conn.execute("SELECT to_regclass(%s)", (f'"{t.schema}"."{t.table}"',)).fetchone()[0]]  # fmt: skip
        if taken:
            raise DriverError(f"the warehouse has tables named as the source's already: {', '.join(taken)} (the "
                              "mirror takes the source's schema and table names, as logical replication matches "
                              "them): publish from another schema, or drop them.")  # fmt: skip
        try:
            with conn.transaction():
                for t in tables:
                    bronze = sql.Identifier(t.schema, t.table)
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(t.schema)))
                    columns = [
                        sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(kind),
                                                  sql.SQL(" NOT NULL" if notnull else ""))
                        for name, kind, notnull in t.columns
                    ]  # fmt: skip
                    columns.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, t.key))))
                    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(bronze, sql.SQL(", ").join(columns)))
                    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(bronze, sql.Literal(
                        f"Bronze: the CDC feed's mirror of the source's {t.schema}.{t.table} (globalcart cdc attach); "
                        f"each change applied here is staged into globalcart.stg_{t.table}.")))  # fmt: skip
                    # the owner's, as the audit triggers are: migrate regenerates the staging trigger as
                    # the owner (db/triggers/cdc.sql); the apply worker writes it as the subscription's owner
                    conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(bronze, sql.Identifier(db.OWNER)))
                    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                        sql.Identifier(t.schema), sql.Identifier(db.OWNER)))  # fmt: skip
                    conn.execute("INSERT INTO globalcart.etl_cdc_tables (source_name, bronze_table) VALUES (%s, %s)",
                                 (t.table, f'"{t.schema}"."{t.table}"'))  # fmt: skip
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(db.OWNER)))
                    conn.execute(
                        "SELECT globalcart.install_bronze_trigger(%s, %s)", (f'"{t.schema}"."{t.table}"', t.table)
                    )
                    conn.execute("RESET ROLE")
                    report.tables.append(f"{t.schema}.{t.table}")
        except psycopg.Error as exc:
            raise DriverError(f"cdc attach failed, nothing changed: {first_line(exc)}") from None
        try:
            exists = source.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (report.slot,)
            ).fetchone()
            if exists:
                raise DriverError(f"the source has a replication slot {report.slot} already (a warehouse of the same "
                                  f"name attached before): drop it there with SELECT pg_drop_replication_slot("
                                  f"'{report.slot}') if nothing uses it, then attach again.")  # fmt: skip
            source.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (report.slot,))
            try:
                conn.execute(
                    sql.SQL(
                        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                        "WITH (create_slot = false, slot_name = {}, copy_data = true)"
                    ).format(
                        sql.Identifier(SUBSCRIPTION),
                        sql.Literal(source_dsn),
                        sql.Identifier(PUBLICATION),
                        sql.Literal(report.slot),
                    )
                )
            except psycopg.Error:
                source.execute("SELECT pg_drop_replication_slot(%s)", (report.slot,))
                raise
            report.copied = _wait_for_initial_copy(conn, copy_timeout)
        except (psycopg.Error, DriverError) as exc:
            _drop_bronze(conn)
            if isinstance(exc, DriverError):
                raise
            raise DriverError(f"cdc attach failed, nothing changed: {first_line(exc)}") from None
    return report


def _drop_bronze(conn: psycopg.Connection) -> None:
    """Drop the bronze tables (etl_cdc_tables), and their schemas where nothing else is left in them."""
    with conn.transaction():
        schemas = set()
        for table, schema in conn.execute(
            "SELECT b.bronze_table::text, n.nspname FROM globalcart.etl_cdc_tables b "
            "JOIN pg_class c ON c.oid = b.bronze_table JOIN pg_namespace n ON n.oid = c.relnamespace"
        ).fetchall():
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.SQL(table)))  # (regclass text: quoted as needed)
            schemas.add(schema)
        conn.execute("DELETE FROM globalcart.etl_cdc_tables")
        for schema in schemas:
            try:
                with conn.transaction():  # (a savepoint: a schema that holds anything else stays)
                    conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(schema)))
            except psycopg.errors.DependentObjectsStillExist:
                pass


@dataclass
class Status:
    """The CDC feed's state: subscription, apply worker, errors, slot and lag."""
    attached: bool
    enabled: bool = False
    worker_running: bool = False
    last_msg_at: object = None
    apply_errors: int = 0
    sync_errors: int = 0
    tables_syncing: int = 0
    problem: str | None = None
    slot: str | None = None
    slot_active: bool | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    source_problem: str | None = None

    @property
    def healthy(self) -> bool:
        """Attached, enabled, the worker running, no error, the slot active."""
        return self.attached and self.problem is None and self.source_problem is None


def status(conn: psycopg.Connection) -> Status:
    """The feed as the warehouse sees it, and — where the source can be reached — its slot there."""
    db.require_schema(conn)
    row = conn.execute(
        "SELECT enabled, worker_pid IS NOT NULL, last_msg_at, apply_errors, sync_errors, tables_syncing, problem "
        "FROM globalcart.cdc_feed()"
    ).fetchone()
    if row is None:
        return Status(attached=False)
    result = Status(True, *row)
    sub = _subscription(conn) if db.is_superuser(conn) else None
    if sub is None:  # (only a superuser may read the subscription's connection string)
        return result
    conninfo, result.slot = sub
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as source:
            slot = source.execute(
                "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (result.slot,),
            ).fetchone()
            if slot is None:
                result.source_problem = (f"the source has no replication slot {result.slot}: it was dropped, the feed "
                                         "cannot resume; detach and attach again (the source's rows are copied "
                                         "anew).")  # fmt: skip
            else:
                result.slot_active, result.lag_bytes = slot
                lag = source.execute(
                    "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication WHERE application_name = %s",
                    (SUBSCRIPTION,),
                ).fetchone()
                result.lag_seconds = (
                    float(lag[0]) if lag and lag[0] is not None else (0.0 if not result.lag_bytes else None)
                )
    except psycopg.Error as exc:
        result.source_problem = f"the source cannot be reached: {first_line(exc)}"
    return result


@dataclass
class DetachReport:
    """What cdc detach dropped, and a problem with the slot on the source, if any."""
    slot: str | None = None
    slot_dropped: bool = False
    slot_problem: str | None = None


def detach(conn: psycopg.Connection) -> DetachReport:
    """Drop the subscription, its slot on the source, and the bronze tables."""
    _require_superuser(conn, "cdc detach")
    db.require_schema(conn)
    sub = _subscription(conn)
    if sub is None:
        raise DriverError("this warehouse is not attached to a source: nothing to detach.")
    conninfo, slot = sub
    report = DetachReport(slot=slot)
    name = sql.Identifier(SUBSCRIPTION)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
    # Its workers stop first: a table's initial copy may be creating a slot on the source, which
    # waits for every transaction with an id to end — on one server, DROP SUBSCRIPTION's own.
    deadline = time.monotonic() + 30
    while conn.execute(
        "SELECT count(*) FROM pg_stat_subscription WHERE subname = %s AND pid IS NOT NULL", (SUBSCRIPTION,)
    ).fetchone()[0]:
        if time.monotonic() > deadline:
            raise DriverError(f"the workers of subscription {SUBSCRIPTION} did not stop within 30 s of disabling it: "
                              "try again, or see the server log.")  # fmt: skip
        time.sleep(0.1)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
    _drop_bronze(conn)
    if slot:
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as source:
                deadline = time.monotonic() + 30
                while True:  # the walsender of the disabled subscription lets go of the slot
                    active = source.execute(
                        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                    ).fetchone()
                    if active is None:
                        break
                    if not active[0]:
                        source.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        report.slot_dropped = True
                        break
                    if time.monotonic() > deadline:
                        raise DriverError(f"the slot {slot} is still in use on the source after 30 s")
                    time.sleep(0.2)
        except (psycopg.Error, DriverError) as exc:
            report.slot_problem = (f"the replication slot {slot} could not be dropped on the source "
                                   f"({first_line(exc)}): "
                                   f"it keeps WAL there until you run SELECT pg_drop_replication_slot('{slot}') on the "
                                   "source.")  # fmt: skip
    return report
