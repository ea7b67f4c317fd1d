"""The commands a person runs: demo end to end (against the test server, and with its own
server), snapshot/compare, the console script, and the benchmark's figures."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, bench_figures, fetch, order, refresh, run_cli, scalar, stage

from driver.core import db, output
from driver.feeds import cdc


def _kpi_line(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(name + " "))
    return line.split()


def test_demo_runs_end_to_end_and_the_kpis_move(dsn):
    result = run_cli("demo", "--orders", "2000", dsn=dsn)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("== migrate", "== seed", "snapshot_kpis('before')", "== simulate", "run_incremental_refresh()",
                 "snapshot_kpis('after')", "KPIs before and after"):  # fmt: skip
        assert step in out, step
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(DISTINCT label) FROM globalcart.kpi_snapshots") == 2
        assert scalar(conn, "SELECT count(*) FROM globalcart.etl_rejects") == 8  # the demo's bad rows
        # what it printed is what the database holds: the last run's summary, the comparison
        run = scalar(conn, "SELECT stats FROM globalcart.etl_runs ORDER BY run_id DESC LIMIT 1")
        sources = [s.name for s in db.sources(conn)]
        comparison = fetch(conn, "SELECT * FROM globalcart.compare_kpis('before', 'after')")
        explained = fetch(conn, "SELECT * FROM globalcart.explain_kpis('before', 'after')")
        seeded = scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") - run["orders"]["inserted"]
    assert output.format_summary(run, sources) in out
    # it ends with why the KPIs moved: each that moved, with its causes from the recorded runs
    out, why = out.split("== Why they moved", 1)
    why, live = why.split("== Watch it live in the browser", 1)
    assert why.rstrip().endswith(output.format_explanation(explained, 3))
    assert "globalcart dashboard --dsn" in live  # (the one command that opens the dashboard on it)
    assert {"new_orders", "returns"} <= {row[4] for row in explained}
    assert "outside_refresh" not in {row[4] for row in explained}
    assert out.rstrip().endswith(output.format_comparison(comparison, "before", "after"))
    # and, read back from the text without the formatter: each KPI's line carries the database's values
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-16:] if line.split()}
    for name, before, after, *_ in comparison:
        printed = [float(v.replace(",", "")) if v != "n/a" else None for v in lines[name][:2]]
        for shown, value in zip(printed, (before, after), strict=True):
            assert (shown is None) == (value is None), (name, lines[name])
            if value is not None:
                assert abs(shown - float(value)) <= max(0.006, abs(float(value)) * 1e-4), (name, shown, value)
    for source in sources:  # the per-source counts of the run, as printed
        row = next(line.split() for line in out.splitlines()
                   if line.split()[:1] == [source] and len(line.split()) == 9 and line.split()[1].isdigit())
        assert row[1:4] == [str(run[source][c]) for c in output.COUNT_COLUMNS[:3]], (source, row)
    assert seeded == 2000 and run["orders"]["inserted"] > 0 and run["totals"]["rejected"] == 8
    moved = {name for name, before, after, *_ in comparison if before != after}
    assert {"orders", "gmv_usd", "return_rate", "refunds_usd", "units"} <= moved

    again = run_cli("demo", dsn=dsn)  # at once, same second even: not empty any more, no second seed
    assert again.returncode == 0, again.stderr
    assert "== seed" not in again.stdout


@pytest.mark.slow
def test_demo_without_a_database_starts_its_own_server_that_admits_only_who_it_should():
    home = Path(tempfile.mkdtemp(prefix="globalcart-demo-"))
    home.chmod(0o755)  # as root, the server runs as another user, who must reach its data
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"GLOBALCART_HOME": str(home / "data")}
    cmd = [sys.executable, "-m", "driver"]
    try:
        result = subprocess.run([*cmd, "demo", "--orders", "1000"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        dsn = re.search(r"connect with: psql '(\S+)'", result.stdout).group(1)
        passfile = Path(re.search(r"passfile=(\S+)", dsn).group(1))
        password = passfile.read_text().strip().rsplit(":", 1)[1]
        assert len(password) >= 24 and password not in result.stdout + result.stderr  # said where, never what
        assert passfile.stat().st_mode & 0o777 == 0o600 and passfile.stat().st_uid == os.geteuid()
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 1
            assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") > 1000
            assert scalar(conn, "SHOW listen_addresses") == "127.0.0.1"
            socket_dir = Path(scalar(conn, "SHOW unix_socket_directories"))
        assert socket_dir.stat().st_mode & 0o777 == 0o700  # only the server's OS user enters it
        without_password = dsn.split("?")[0]
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(without_password, connect_timeout=5).close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(without_password + "?password=guess", connect_timeout=5).close()
        status = subprocess.run([*cmd, "server", "status"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert status.stdout.startswith("running: ")
        assert (home / "data" / "pgdata" / "PG_VERSION").exists()  # the data lives where it was asked to

        # a data directory from before passwords: no passfile yet; its next start gives it one
        subprocess.run([*cmd, "server", "stop"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        passfile.unlink()
        again = subprocess.run([*cmd, "server", "start"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert passfile.exists() and passfile.read_text().strip().rsplit(":", 1)[1] != password
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") > 1000

        # the same server, fed by a shop database through logical replication (it runs with wal_level = logical)
        fed = subprocess.run([*cmd, "demo", "--cdc"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert fed.returncode == 0, fed.stderr
        assert "cdc attach: the warehouse subscribes" in fed.stdout and "cdc status: healthy" in fed.stdout, fed.stdout
        warehouse = re.search(r"warehouse: psql '(\S+)'", fed.stdout).group(1)
        with psycopg.connect(warehouse, autocommit=True) as conn:
            assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders WHERE deleted_at IS NULL") > 100
            assert scalar(conn, "SELECT count(*) FROM globalcart.etl_cdc_tables") == 7
            assert fetch(conn, "SELECT DISTINCT status FROM globalcart.pipeline_health WHERE fed_by IS NOT NULL") == [
                ("ok",)]  # fmt: skip
            cdc.detach(conn)  # (a slot left on the shop would hold its WAL)
    finally:
        stopped = subprocess.run([*cmd, "server", "stop"], cwd=ROOT, env=env, capture_output=True, text=True)
        shutil.rmtree(home, ignore_errors=True)
    assert stopped.stdout.strip() == "stopped"


def test_snapshot_and_compare_commands(dsn):
    assert run_cli("snapshot", "before", dsn=dsn).returncode == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(1)])
        refresh(conn)
    snap = run_cli("snapshot", "after", dsn=dsn)
    assert snap.returncode == 0 and "labelled 'after'" in snap.stdout
    result = run_cli("compare", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert _kpi_line(result.stdout, "orders")[1:4] == ["0", "1", "1"]


def test_console_script_is_the_same_as_python_m_driver():
    script = Path(sys.executable).parent / "globalcart"
    assert script.exists()
    direct = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    module = subprocess.run([sys.executable, "-m", "driver", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert direct.returncode == module.returncode == 0
    assert direct.stdout == module.stdout
    for command in ("migrate", "refresh", "seed", "simulate", "snapshot", "compare", "schedule", "unschedule",
                    "demo", "bench"):  # fmt: skip
        assert command in direct.stdout


def test_psql_report_prints_the_comparison(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT globalcart.snapshot_kpis('before')")
        stage(conn, "orders", [order(1)])
        refresh(conn)
        conn.execute("SELECT globalcart.snapshot_kpis('after')")
    psql = subprocess.run(["psql", dsn, "-X", "-v", "ON_ERROR_STOP=1", "-f", "db/reports/before_after_kpis.sql"],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert psql.returncode == 0, psql.stderr
    assert re.search(r"orders\s+\|\s+0\.0000\s+\|\s+1\.0000", psql.stdout)


@pytest.mark.slow
def test_bench_prints_its_figures():
    result = run_cli("bench", "--small", "400", "--large", "800", "--delta-orders", "15", "--freshness-seconds", "3",
                     "--sustained-seconds", "2", "--sustained-from", "100")  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = bench_figures(result.stdout)
    for name in ("refresh, warehouse of 400 orders", "refresh, warehouse of 800 orders",
                 "large ÷ small, per delta row", "refresh ÷ bare (goal ≤ 2.5, stretch 2)"):  # fmt: skip
        assert figures.get(name, 0) > 0, (name, figures)  # measured, not a label with nothing behind it
    for name in ("full reload of the 800-order warehouse", "snapshot_kpis(), large warehouse",
                 "full reload ÷ refresh of one delta", "order_timeline() of one order, large",
                 "fact_orders_as_of() of one order, large", "kpi_values_as_of(), whole large warehouse",
                 "explain_kpis() across the timed deltas, large (goal ≤ 0.100 s)"):  # fmt: skip
        assert name in figures, (name, figures)
    for name in ("refresh without the attribution (kpi_attribution off), small",
                 "refresh without the attribution (kpi_attribution off), large"):  # fmt: skip
        assert figures.get(name, 0) > 0, (name, figures)
    assert re.search(r"what the attribution adds, small / large \(goal ≤ \+10 %\) +[+-][0-9.]+% / [+-][0-9.]+%",
                     result.stdout), result.stdout  # fmt: skip
    follow = next(line for line in result.stdout.splitlines() if line.startswith("follow "))
    minute = next(line for line in result.stdout.splitlines() if line.startswith("minute "))
    assert follow.split()[1] == minute.split()[1] == "600"  # 200 orders/s for 3 s, each one seen
    # the sustained-rate search: 100 orders/s held (and doubled from there) on so small a warehouse
    assert re.search(r"^  highest rate held: [1-9][0-9,]* orders/s", result.stdout, re.M), result.stdout
    assert re.search(r"^100 +[0-9,]+ +[0-9.]+ s +held", result.stdout, re.M), result.stdout
    # beside dbt (.ci/setup.sh installs it into .venv-dbt): both sides measured on the same delta
    assert (ROOT / ".venv-dbt" / "bin" / "dbt").exists(), "bash .ci/setup.sh installs dbt into .venv-dbt"
    assert "beside dbt, 800-order warehouse: one delta of 8 newer versions of stored orders and 8 new ones" in (
        " ".join(result.stdout.split()))
    for name in ("refresh of the 16-order delta (facts, audit, summaries)",
                 "of which the floor: guarded upsert with its audit trigger",
                 "dbt: fact_orders + daily summary, database time",
                 "refresh ÷ dbt's database time (goal ≤ 0.33)"):  # fmt: skip
        assert figures.get(name, 0) > 0, (name, figures)


def test_bench_with_a_dbt_that_is_not_there_says_so():
    result = run_cli("bench", "--dbt", "/nonexistent/dbt")
    assert result.returncode == 2 and "dbt not found at /nonexistent/dbt" in result.stderr, result
    assert "Traceback" not in result.stderr


def test_sustained_rate_search_doubles_then_halves_the_gap():
    from driver.bench.freshness import Sustained, search_rate

    def follow(ceiling: int, producer: int = 10**9):  # a follow loop that keeps up to `ceiling` orders/s
        tried = []

        def attempt(rate: int, step: int) -> tuple[float, float]:
            tried.append(rate)
            return min(rate, producer), (1.0 if rate <= ceiling else float("inf") if rate > 2 * ceiling else 7.0)

        return tried, attempt

    tried, attempt = follow(11_000)
    result = search_rate(attempt, Sustained(5.0, 60, []), 1000, 6, 2)
    assert tried == [1000, 2000, 4000, 8000, 16000, 12000, 10000]
    assert result.held == 10000 and result.stopped == "12,000 orders/s: p95 above 5 s"
    assert [row[3] for row in result.rows()] == ["held"] * 4 + ["not held", "not held", "held"]

    tried, attempt = follow(30_000)  # every doubling holds: no gap to halve
    result = search_rate(attempt, Sustained(5.0, 60, []), 1000, 3, 2)
    assert tried == [1000, 2000, 4000] and result.held == 4000 and "held" in result.stopped

    tried, attempt = follow(30_000, producer=3000)  # the producer's own limit stops the search
    result = search_rate(attempt, Sustained(5.0, 60, []), 1000, 6, 2)
    assert tried == [1000, 2000, 4000] and "its own limit" in result.stopped

    tried, attempt = follow(400)  # the first rate fails: the gap below it is searched
    result = search_rate(attempt, Sustained(5.0, 60, []), 1000, 6, 2)
    assert tried == [1000, 500, 200] and result.held == 200 and result.stopped == "500 orders/s: p95 above 5 s"


def test_a_freshness_run_starts_from_settled_staging(dsn):
    """What an earlier run left staged is applied, after any refresh under way, before the next run
    is timed (a rate that did not hold must not leave its backlog to the next rate)."""
    import threading
    import time

    from driver.bench.freshness import settle

    with psycopg.connect(dsn, autocommit=True) as conn:
        stage(conn, "orders", [order(900_001), order(900_002)])
        holder = psycopg.connect(dsn)  # a refresh "under way": the lock the refresh takes
        holder.execute("LOCK globalcart.etl_refresh_lock IN EXCLUSIVE MODE")
        threading.Timer(2.0, holder.rollback).start()
        started = time.monotonic()
        settle(dsn)
        waited = time.monotonic() - started
        holder.close()
        assert waited >= 1.5  # it waited for the refresh under way, not skipped past it
        assert scalar(conn, "SELECT count(*) FROM globalcart.stg_orders") == 0
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders WHERE order_id IN (900001, 900002)") == 2


def test_the_follow_loop_outlasts_a_producer_slow_to_start(dsn, monkeypatch):
    """At ten million orders the producer takes seconds to load the dimensions before its first
    order: the follow loop must still be running when the last order is committed (it once ran for
    a fixed time from its own start, and the last orders of the run were never applied), and it is
    stopped once every order is visible."""
    import time
    from datetime import UTC, datetime, timedelta

    from driver.bench import freshness
    from driver.simulation.generator import Generator
    from driver.simulation.seed import seed_history

    load = Generator.load_dimensions

    def slow_load(self, conn):
        time.sleep(7)  # longer than the margin the loop had beyond the producer's seconds
        return load(self, conn)

    with psycopg.connect(dsn) as conn:
        seed_history(conn, dsn, orders=100, seed=3, as_of=datetime.now(UTC) - timedelta(days=1), days=10)
    monkeypatch.setattr(Generator, "load_dimensions", slow_load)
    started = time.monotonic()
    figure = freshness.measure(dsn, "follow", 2, 20, 7, log=lambda _line: None)
    assert figure.orders == 40 and figure.max < freshness.FOLLOW_WAIT
    assert time.monotonic() - started < 7 + 2 + 15  # not the loop's whole run_for: it was stopped
    with psycopg.connect(dsn, autocommit=True) as conn:
        follow = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'globalcart-bench-follow'"
        assert scalar(conn, follow) == 0
