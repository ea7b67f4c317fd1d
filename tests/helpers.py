"""Building staged rows, running commands and reading results in tests. Rows are dicts of
business columns; ``stage`` COPYs them into globalcart.stg_<source> as a producer would."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# docs/contract.md §1, the specification the tests hold the warehouse to: source -> (staging table,
# fact table, key), in the order of application. test_registry.py checks globalcart.etl_sources
# against it; the tests take their source names, tables and keys from here.
CONTRACT_SOURCES = {
    "customers": ("stg_customers", "dim_customer", "customer_id"),
    "products": ("stg_products", "dim_product", "product_id"),
    "orders": ("stg_orders", "fact_orders", "order_id"),
    "order_items": ("stg_order_items", "fact_order_items", "order_item_id"),
    "payments": ("stg_payments", "fact_payments", "payment_id"),
    "shipments": ("stg_shipments", "fact_shipments", "shipment_id"),
    "returns": ("stg_returns", "fact_returns", "return_id"),
    "funnel_events": ("stg_funnel_events", "fact_funnel_events", "event_id"),
}
SOURCES = tuple(CONTRACT_SOURCES)
FACT_OF = {source: fact for source, (_, fact, _) in CONTRACT_SOURCES.items()}
KEY_OF = {source: key for source, (_, _, key) in CONTRACT_SOURCES.items()}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, dsn: str | None = None, env_dsn: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, subprocess_: bool = False) -> CliResult:  # fmt: skip
    """Run ``globalcart ARGS`` (``--dsn`` appended when given; ``env_dsn`` as DATABASE_URL, which is
    otherwise unset; ``env``: more variables, e.g. PGOPTIONS). In this process, through
    ``driver.commands.main``, unless ``subprocess_``: for what only a process shows (the console script,
    a server left running, exit on a signal)."""
    argv = [*args, *(["--dsn", dsn] if dsn else [])]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | (env or {})
    if env_dsn:
        env["DATABASE_URL"] = env_dsn
    if subprocess_:
        done = subprocess.run([sys.executable, "-m", "driver", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip
        return CliResult(done.returncode, done.stdout, done.stderr)
    from driver.commands import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: a bad command line, --help
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, out.getvalue(), err.getvalue())


def ts(minutes: float = 0) -> datetime:
    """A fixed point in time plus some minutes: versions are ordered by these."""
    return T0 + timedelta(minutes=minutes)


def customer(customer_id: int, **over: Any) -> dict:
    row = dict(
        customer_id=customer_id,
        full_name=f"Customer {customer_id}",
        email=f"c{customer_id}@example.com",
        country_code="US",
        signup_ts=ts(-10_000),
        segment="CONSUMER",
        updated_at=ts(0),
    )
    return row | over


def product(product_id: int, **over: Any) -> dict:
    row = dict(
        product_id=product_id,
        sku=f"SKU-{product_id}",
        product_name=f"Product {product_id}",
        category="Books",
        list_price_usd=10,
        updated_at=ts(0),
    )
    return row | over


def order(order_id: int, **over: Any) -> dict:
    row = dict(
        order_id=order_id,
        customer_id=1,
        order_ts=ts(0),
        order_status="PLACED",
        channel="web",
        country_code="US",
        currency="USD",
        gross_amount=100,
        discount_amount=10,
        shipping_amount=5,
        net_amount=95,
        updated_at=ts(0),
    )
    return row | over


def item(order_item_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        order_item_id=order_item_id,
        order_id=order_id,
        product_id=1,
        quantity=2,
        unit_price=50,
        discount_amount=10,
        line_amount=90,
        updated_at=ts(0),
    )
    return row | over


def payment(payment_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        payment_id=payment_id,
        order_id=order_id,
        payment_ts=ts(1),
        payment_method="card",
        payment_status="CAPTURED",
        amount=95,
        currency="USD",
        updated_at=ts(1),
    )
    return row | over


def shipment(shipment_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        shipment_id=shipment_id,
        order_id=order_id,
        carrier="DHL",
        shipped_ts=ts(60),
        promised_ts=ts(60 * 72),
        delivered_ts=None,
        shipment_status="IN_TRANSIT",
        sla_breached_flag=None,
        updated_at=ts(60),
    )
    return row | over


def return_(return_id: int, order_id: int, **over: Any) -> dict:
    row = dict(
        return_id=return_id,
        order_id=order_id,
        order_item_id=None,
        return_ts=ts(60 * 24 * 10),
        reason="damaged",
        refund_amount=20,
        return_status="REQUESTED",
        updated_at=ts(60 * 24 * 10),
    )
    return row | over


def event(session_id: str, event_type: str, **over: Any) -> dict:
    row = dict(
        event_id=uuid.uuid4(),
        session_id=session_id,
        customer_id=None,
        event_ts=ts(0),
        event_type=event_type,
        product_id=None,
        order_id=None,
        cart_value_usd=None,
        channel="web",
        updated_at=ts(0),
    )
    return row | over


def stage(conn: psycopg.Connection, source: str, rows: list[dict]) -> None:
    """COPY rows into globalcart.stg_<source>, naming only their business columns."""
    if not rows:
        return
    columns = list(rows[0])
    with conn.cursor() as cur:
        with cur.copy(f"COPY globalcart.stg_{source} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(c) for c in columns])


def stage_orders_in_bulk(conn: psycopg.Connection, order_ids: range) -> None:
    """COPY many plain PLACED orders (a batch that takes a refresh a while), one per id."""
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY globalcart.stg_orders (order_id, customer_id, order_ts, order_status, channel, country_code, "
            "currency, gross_amount, discount_amount, shipping_amount, net_amount, updated_at) FROM STDIN"
        ) as copy,
    ):
        for i in order_ids:
            copy.write_row((i, i % 500, T0, "PLACED", "web", "US", "USD", 10, 0, 0, 10, T0))


def refresh(conn: psycopg.Connection) -> dict:
    row = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()
    assert row is not None
    return row[0]


def fetch(conn: psycopg.Connection, sql: str, *params: Any) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def scalar(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def wait_for(predicate: Any, timeout: float = 60, step: float = 0.25) -> Any:
    """Call ``predicate`` every ``step`` seconds until it returns something true (returned), or
    ``timeout`` seconds have passed (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def partition_of(conn: psycopg.Connection, table: str, where: str) -> list[str]:
    """The partitions of globalcart.<table> that hold its rows WHERE <where>. On Citus a row's
    tableoid names the shard of its partition (fact_orders_p2026_04_102256): the shard id is left
    out, so the same test reads the same names on one server and on a distributed warehouse."""
    names = [
        r[0] for r in fetch(conn, f"SELECT DISTINCT tableoid::regclass::text FROM globalcart.{table} WHERE {where}")
    ]
    sharded = scalar(conn, "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL") and scalar(
        conn, "SELECT count(*) > 0 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = %s::regclass",
        f"globalcart.{table}",
    )  # fmt: skip
    return sorted(re.sub(r"_\d+$", "", n) for n in names) if sharded else sorted(names)


def staged_count(conn: psycopg.Connection) -> int:
    return sum(scalar(conn, f"SELECT count(*) FROM globalcart.stg_{s}") for s in SOURCES)


def rejects(conn: psycopg.Connection, source: str | None = None) -> list[tuple[str, str, dict]]:
    """(source_name, reason, record) of every reject, oldest first."""
    sql = "SELECT source_name, reason, record FROM globalcart.etl_rejects"
    if source:
        return fetch(conn, sql + " WHERE source_name = %s ORDER BY reject_id", source)
    return fetch(conn, sql + " ORDER BY reject_id")


def table_digest(conn: psycopg.Connection, table: str, without: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of a globalcart table as text, sorted: equal digests mean equal contents
    (``without``: columns left out, e.g. the run that wrote a row)."""
    if without:
        return fetch(conn, f"SELECT (to_jsonb(t) - %s::text[])::text FROM globalcart.{table} t ORDER BY 1",
                     list(without))  # fmt: skip
    return fetch(conn, f"SELECT t::text FROM globalcart.{table} t ORDER BY 1")


@contextlib.contextmanager
def installed_by_release(pg_server: Any, tmp_path: Path, commit: str, dbname: str):
    """A database of its own, migrated by an earlier release of this repository (its db/ and
    driver/ from the git history, run from ``tmp_path``): yields its DSN, drops it afterwards.
    Skips the test where the git history is not there."""
    import pytest
    from servers import database

    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True, check=False).returncode != 0:  # fmt: skip
        pytest.skip("needs the git history (the previous release is installed from it)")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "db", "driver"],
                             capture_output=True, check=True)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    janitor = database(pg_server, dbname)
    janitor.init()
    try:
        dsn = pg_server.dsn(dbname)
        old = subprocess.run([sys.executable, "-m", "driver", "migrate", "--no-cron", "--dsn", dsn], cwd=tmp_path,
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert old.returncode == 0, old.stderr
        yield dsn
    finally:
        janitor.drop()


def bench_figures(stdout: str) -> dict[str, float]:
    """The figures of a table `globalcart bench` printed: measure -> its number (seconds or ratio)."""
    figures = {}
    for line in stdout.splitlines():
        if match := re.match(r"^\s*(\S.*?)\s{2,}([0-9.,]+)( s)?(\s{2,}([0-9,]+) rows/s)?$", line):
            figures[match.group(1)] = float(match.group(2).replace(",", ""))
    return figures
