"""``bench --dbt``: the refresh beside dbt on the same delta of orders.

dbt is the anchor this pipeline is measured against (docs/benchmark.md): an incremental
``fact_orders`` model plus the idiomatic incremental daily summary, which recomputes every day a
changed order belongs to. Both sides get the same delta — ``changed`` newer versions of stored
orders and ``new`` orders never seen — on copies of the same warehouse, one after the other:

- the refresh: the delta staged in ``globalcart.stg_orders``, one ``run_incremental_refresh()``
  (facts, audit, KPI summaries, in one transaction), timed by the database;
- dbt (its own executable, e.g. a virtual environment with dbt-core and dbt-postgres 1.11): the
  same rows appended to a raw table that holds every version (as a loader would land them),
  ``dbt run`` of the two models. Its database time is the sum of the durations dbt logs for the
  statements it sends (``SQL status: … in N seconds``); the whole ``dbt run`` is printed too.

The dbt project is written into a temporary directory each time from the text below; dbt is not a
dependency of the product, only of this figure.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from driver.bench.freshness import settle
from driver.core.errors import DriverError

ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "order_status", "channel", "country_code", "currency",
                 "gross_amount", "discount_amount", "shipping_amount", "net_amount", "updated_at")  # fmt: skip

DBT_PROJECT = """\
name: globalcart_bench
version: "1.0"
config-version: 2
profile: globalcart_bench
model-paths: ["models"]
"""

SOURCES = """\
version: 2
sources:
  - name: raw
    schema: dbt_raw
    tables:
      - name: orders
"""

# Newest version of each order since the model's last run, merged by order_id (dbt's incremental
# model with a unique key; the unique index is made on the first build so the merge probes it).
FACT_ORDERS = """\
{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='merge',
          post_hook=["{% if not is_incremental() %}create unique index on {{ this }} (order_id);
                      create index on {{ this }} (updated_at){% endif %}"]) }}
select distinct on (order_id) *
from {{ source('raw', 'orders') }}
{% if is_incremental() %}
where updated_at > (select coalesce(max(updated_at), '-infinity') from {{ this }})
{% endif %}
order by order_id, updated_at desc
"""

# The idiomatic incremental daily summary: every day that a changed order belongs to is
# recomputed from the facts (delete+insert by day).
DAILY_SUMMARY = """\
{{ config(materialized='incremental', unique_key='order_day', incremental_strategy='delete+insert',
          post_hook=["{% if not is_incremental() %}create index on {{ this }} (order_day){% endif %}"]) }}
{% if is_incremental() %}
with changed_days as (
  select distinct (order_ts at time zone 'UTC')::date as order_day
  from {{ ref('fact_orders') }}
  where updated_at > (select max(max_updated_at) from {{ this }})
)
{% endif %}
select (o.order_ts at time zone 'UTC')::date as order_day, o.country_code, o.channel, o.currency,
       count(*) as orders,
       count(*) filter (where o.order_status <> 'CANCELLED') as live_orders,
       sum(o.gross_amount) filter (where o.order_status <> 'CANCELLED') as gross_amount,
       sum(o.net_amount) filter (where o.order_status <> 'CANCELLED') as net_amount,
       count(*) filter (where o.order_status = 'RETURNED') as returned_orders,
       count(*) filter (where o.order_status in ('DELIVERED', 'COMPLETED', 'RETURNED')) as delivered_orders,
       max(o.updated_at) as max_updated_at
from {{ ref('fact_orders') }} o
{% if is_incremental() %}
where (o.order_ts at time zone 'UTC')::date in (select order_day from changed_days)
{% endif %}
group by 1, 2, 3, 4
"""

CLONES = ("bench_dbt_refresh", "bench_dbt_floor", "bench_dbt")
SQL_STATUS = re.compile(r"SQL status: .* in (\d+(?:\.\d+)?) seconds")


@dataclass
class DbtFigures:
    """The refresh, the contract's floor and dbt's two models on the same delta of orders."""
    changed: int
    new: int
    refresh: float  # the refresh, database time (one call)
    audited: float  # the guarded upsert alone, its audit trigger on: what any refresh of this contract costs
    dbt_database: float  # dbt's statements, as dbt logs their durations
    dbt_run: float  # the whole `dbt run`, process start to exit
    version: str = ""  # dbt-core's

    def rows(self) -> list[list[str]]:
        """The figures as rows of the bench's table."""
        delta = f"{self.changed + self.new:,}-order delta"
        return [
            [f"refresh of the {delta} (facts, audit, summaries)", f"{self.refresh:.3f} s"],
            ["  of which the floor: guarded upsert with its audit trigger", f"{self.audited:.3f} s"],
            ["dbt: fact_orders + daily summary, database time", f"{self.dbt_database:.3f} s"],
            ["  the whole `dbt run`", f"{self.dbt_run:.2f} s"],
            ["  refresh ÷ dbt's database time (goal ≤ 0.33)", f"{self.refresh / self.dbt_database:.2f}"],
            ["  the floor ÷ dbt's database time", f"{self.audited / self.dbt_database:.2f}"],
        ]


def find_dbt(executable: str | None, project: Path) -> str | None:
    """The dbt executable: the one given (a clear error when it is not there); else the project's
    .venv-dbt (which .ci/setup.sh makes), else ``dbt`` on PATH, else None."""
    if executable:
        path = shutil.which(executable)
        if path is None:
            raise DriverError(
                f"dbt not found at {executable}: install dbt-core and dbt-postgres 1.11 (bash .ci/setup.sh makes "
                ".venv-dbt with them) or pass the path of a dbt executable.",
                2,
            )
        return path
    return shutil.which(str(project / ".venv-dbt" / "bin" / "dbt")) or shutil.which("dbt")


def dbt_version(dbt: str) -> str:
    """dbt-core's version, as `dbt --version` says it ('?' when it does not)."""
    result = subprocess.run([dbt, "--version"], capture_output=True, text=True)
    found = re.search(r"installed:\s*(\S+)", result.stdout)
    return found.group(1) if found else "?"


def _write_project(folder: Path, dsn: str) -> None:
    params = conninfo_to_dict(dsn)
    profile = {
        "globalcart_bench": {
            "target": "bench",
            "outputs": {
                "bench": {
                    "type": "postgres",
                    "host": params.get("host", "127.0.0.1"),
                    "port": int(params.get("port", 5432)),
                    "user": params.get("user", "postgres"),
                    "password": params.get("password", ""),
                    "dbname": params["dbname"],
                    "schema": "dbt_bench",
                    "threads": 1,
                }
            },
        }
    }
    (folder / "models").mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(DBT_PROJECT)
    (folder / "profiles.yml").write_text(json.dumps(profile))  # (JSON is YAML)
    (folder / "models" / "sources.yml").write_text(SOURCES)
    (folder / "models" / "fact_orders.sql").write_text(FACT_ORDERS)
    (folder / "models" / "daily_summary.sql").write_text(DAILY_SUMMARY)


def _dbt_run(dbt: str, folder: Path) -> tuple[float, float]:
    """``dbt run`` in ``folder``: (database time from its log, the whole run)."""
    log = folder / "logs" / "dbt.log"
    if log.exists():
        log.unlink()
    env = {**os.environ, "DBT_PROFILES_DIR": str(folder), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    started = time.perf_counter()
    result = subprocess.run([dbt, "run", "--log-level-file", "debug", "--log-format-file", "text"], cwd=folder,
                            env=env, capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise DriverError(f"dbt run failed: {(result.stdout + result.stderr).strip()[-600:]}", 1)
    database = sum(float(m.group(1)) for m in SQL_STATUS.finditer(log.read_text()))
    return database, seconds


def _delta(conn: psycopg.Connection, changed: int, new: int, seed: int) -> list[tuple]:
    """``changed`` newer versions of stored orders (same status, amounts changed) and ``new`` orders
    above every stored id (copies of stored ones under new ids), all with a newer updated_at."""
    rng = random.Random(seed)  # noqa: S311 (a benchmark's sample, not a secret)
    top, now = conn.execute("SELECT max(order_id), max(updated_at) FROM globalcart.fact_orders").fetchone()
    if top is None:
        raise DriverError("the large warehouse has no orders to change", 1)
    sample = conn.execute(
        f"SELECT {', '.join(ORDER_COLUMNS)} FROM globalcart.fact_orders TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) "
        "WHERE deleted_at IS NULL LIMIT %s",
        (min(100.0, 300.0 * (changed + new) / max(top, 1)), seed, changed + new),
    ).fetchall()
    rng.shuffle(sample)
    rows = []
    updated = now + timedelta(seconds=1)
    for n, row in enumerate(sample[:changed]):
        net = Decimal(row[10]) + Decimal("1.00")
        rows.append((*row[:10], net, updated + timedelta(microseconds=n)))
    for n, row in enumerate(sample[changed:changed + new]):  # fmt: skip
        order_ts: datetime = now - timedelta(hours=rng.uniform(0, 48))
        rows.append((top + 1 + n, row[1], order_ts, "PLACED", *row[4:11], updated + timedelta(microseconds=n)))
    return rows


def _copy(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(ORDER_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _audited_upsert(conn: psycopg.Connection, rows: list[tuple]) -> float:
    """The rows upserted into fact_orders by the contract's guarded upsert alone (newer updated_at
    wins; the order's partition; the BEFORE UPDATE audit trigger on): the floor of any refresh that
    keeps section 2 of the contract, before validation, transitions and summaries. Timed."""
    columns = ", ".join(ORDER_COLUMNS)
    conn.execute("DROP TABLE IF EXISTS pg_temp.bench_delta")
    conn.execute(f"CREATE TEMPORARY TABLE bench_delta AS SELECT {columns} FROM globalcart.stg_orders LIMIT 0")
    _copy(conn, "bench_delta", rows)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS if c not in ("order_id", "order_ts"))
    conn.execute("CHECKPOINT")
    started = time.perf_counter()
    conn.execute(f"INSERT INTO globalcart.fact_orders AS t ({columns}) SELECT {columns} FROM bench_delta "
                 f"ON CONFLICT (order_id, order_ts) DO UPDATE SET {sets} "
                 "WHERE EXCLUDED.updated_at > t.updated_at")  # fmt: skip
    return time.perf_counter() - started


def compare_with_dbt(admin_dsn: str, dsn_of: Callable[[str], str], template: str, dbt: str, *, changed: int = 10_000,
                     new: int = 10_000, seed: int = 360) -> DbtFigures:  # fmt: skip
    """Clone ``template`` three times (the refresh, the floor, dbt) and build dbt's models on its
    clone; then two deltas into each, the first to warm them (dbt's first build read every order;
    the other clones start cold), the second timed."""
    settle(dsn_of(template))  # (nothing staged left behind by what ran before, no refresh under way)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        for name in CLONES:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            for attempt in range(60):  # (a follow loop of an earlier run may still be leaving the template)
                try:
                    # FILE_COPY: a copy of the files after a checkpoint, not page by page through shared
                    # buffers (WAL_LOG, the default, failed here once with PostgreSQL 15's "buffer is
                    # pinned in InvalidateBuffer", the cleanup of a copy that had failed hiding its cause)
                    admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 59:
                        raise
                    time.sleep(1)
    try:
        deltas = []
        with psycopg.connect(dsn_of("bench_dbt_refresh"), autocommit=True) as conn:
            for n in range(2):
                deltas.append(_delta(conn, changed, new, seed + n))
                _copy(conn, "globalcart.stg_orders", deltas[-1])
                conn.execute("CHECKPOINT")
                started = time.perf_counter()
                summary = conn.execute("SELECT globalcart.run_incremental_refresh()").fetchone()[0]
                refresh = time.perf_counter() - started
                if summary["status"] != "ok" or summary["totals"]["rejected"]:
                    raise DriverError(f"the refresh of the dbt delta did not apply cleanly: {summary}", 1)
            stored = conn.execute("SELECT count(*) FROM globalcart.fact_orders").fetchone()[0]
        with psycopg.connect(dsn_of("bench_dbt_floor"), autocommit=True) as conn:
            for rows in deltas:
                audited = _audited_upsert(conn, rows)
        with (
            psycopg.connect(dsn_of("bench_dbt"), autocommit=True) as conn,
            tempfile.TemporaryDirectory(prefix="globalcart-dbt-") as folder,
        ):
            conn.execute("CREATE SCHEMA dbt_raw")
            columns = ", ".join(ORDER_COLUMNS)
            conn.execute(f"CREATE TABLE dbt_raw.orders AS SELECT {columns} FROM globalcart.fact_orders")
            conn.execute("CREATE INDEX ON dbt_raw.orders (updated_at)")
            conn.execute("VACUUM ANALYZE dbt_raw.orders")
            _write_project(Path(folder), dsn_of("bench_dbt"))
            _dbt_run(dbt, Path(folder))  # the first build: every order, not timed
            conn.execute("VACUUM ANALYZE")
            for rows in deltas:
                _copy(conn, "dbt_raw.orders", rows)
                conn.execute("CHECKPOINT")
                database, whole = _dbt_run(dbt, Path(folder))
            built = conn.execute("SELECT count(*) FROM dbt_bench.fact_orders").fetchone()[0]
            if built != stored:
                raise DriverError(f"dbt's fact_orders has {built:,} orders, the refresh's {stored:,}", 1)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            for name in CLONES:
                admin.execute(f"DROP DATABASE IF EXISTS {name}")
    return DbtFigures(changed, new, refresh, audited, database, whole, dbt_version(dbt))
