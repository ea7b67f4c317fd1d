"""Freshness, for ``bench``: how long a committed staged order takes to be visible in fact_orders.

A producer commits orders with their items and payments into staging at a steady rate (``rate``
orders a second, in a COPY every 50 ms) for ``seconds``; a watcher polls fact_orders every 20 ms
and notes when each order appears. Latency = first seen - commit acknowledged. Measured once with
the follow loop (``CALL globalcart.refresh_for()`` running the whole time) and once with the plain
pg_cron schedule (``globalcart schedule``: the refresh at every minute tick).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from driver.core.schedule import schedule, unschedule
from driver.simulation.generator import Batch, Generator, Ids, usd_rates
from driver.simulation.staging import copy_batch

TICK = 0.05  # the producer commits every 50 ms
POLL = 0.02  # the watcher looks every 20 ms
FOLLOW_WAIT = 20  # seconds after the producer stopped within which every order must be visible (follow mode)
MINUTE_WAIT = 90  # the same with the job every minute


class FreshnessIncomplete(RuntimeError):
    """Some orders were not visible in time: the refresh falls behind the load."""


@dataclass
class Freshness:
    """Staged commit -> visible in fact_orders, over one producer run, refreshed one way (follow or minute)."""
    mode: str
    orders: int
    p50: float
    p95: float
    max: float

    def row(self) -> list[str]:
        """The figures as one row of the freshness table."""
        return [self.mode, f"{self.orders:,}", f"{self.p50:.2f} s", f"{self.p95:.2f} s", f"{self.max:.2f} s"]


class _Producer:
    """Orders placed half an hour ago and paid since, ``rate`` a second, each batch committed alone.
    Connects and loads the dimensions when made (at ten million orders that alone takes seconds), so
    that the clock of a measurement starts with the first order."""

    def __init__(self, dsn: str, rate: int, seed: int) -> None:
        self.conn = psycopg.connect(dsn, application_name="globalcart-bench-producer")
        self.gen = Generator(seed, usd_rates(self.conn))
        self.gen.load_dimensions(self.conn)
        self.ids = Ids.after_existing(self.conn)
        self.conn.commit()
        self.per_tick = max(1, round(rate * TICK))

    def run(self, seconds: float, committed: list[tuple[int, int, float]]) -> None:
        """Produces for ``seconds``; each commit noted as (first order id, last, when acknowledged)."""
        with self.conn:
            stop_at = time.monotonic() + seconds
            next_tick = time.monotonic()
            while time.monotonic() < stop_at:
                batch = Batch()
                now = datetime.now(UTC)
                first = self.ids.order
                for _ in range(self.per_tick):
                    self.gen.make_order(self.ids, batch, now - timedelta(minutes=30), now)
                copy_batch(self.conn, batch)
                committed.append((first, self.ids.order - 1, time.monotonic()))
                next_tick += TICK
                time.sleep(max(0.0, next_tick - time.monotonic()))


def _watch(dsn: str, first_id: int, stop: threading.Event, seen: dict[int, float]) -> None:
    with psycopg.connect(dsn, autocommit=True, application_name="globalcart-bench-watcher") as conn:
        low = first_id  # every order below this one has been seen
        while not stop.is_set():
            rows = conn.execute("SELECT order_id FROM globalcart.fact_orders WHERE order_id >= %s", (low,)).fetchall()
            now = time.monotonic()
            for (order_id,) in rows:
                seen.setdefault(order_id, now)
            while low in seen:
                low += 1
            time.sleep(POLL)


def _follow(dsn: str, run_for: timedelta, pid: list[int]) -> None:
    """The follow loop for ``run_for``, unless measure cancels it first (once every order is seen)."""
    with psycopg.connect(dsn, autocommit=True, application_name="globalcart-bench-follow") as conn:
        pid.append(conn.info.backend_pid)
        try:
            conn.execute("CALL globalcart.refresh_for(%s, '1 second')", (run_for,))
        except psycopg.errors.QueryCanceled:
            pass  # (a refresh under way is rolled back; settle applies what it had claimed)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile of ``values`` (nearest rank)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def settle(dsn: str, timeout: float = 900) -> None:
    """Waits until no refresh runs (a previous run's follow loop may still be working through what
    its producer left), then applies whatever is still staged: each measurement starts from empty
    staging, with no refresh of another one's under way."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            try:
                conn.execute("CALL globalcart.drain_staging()")
                return
            except psycopg.Error as exc:  # GC005: a call was skipped, another refresh being under way
                if exc.sqlstate != "GC005" or time.monotonic() > deadline:
                    raise
                time.sleep(1)


def measure(dsn: str, mode: str, seconds: float, rate: int, seed: int, log: Callable[[str], None] = print) -> Freshness:
    """``mode`` is 'follow' (refresh_for on a connection of its own) or 'minute' (pg_cron, every minute).
    Starts from settled staging (``settle``)."""
    settle(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        first_id = conn.execute("SELECT coalesce(max(order_id), 0) + 1 FROM globalcart.fact_orders").fetchone()[0]
    committed: list[tuple[int, int, float]] = []
    seen: dict[int, float] = {}
    wait = FOLLOW_WAIT if mode == "follow" else MINUTE_WAIT
    producer = _Producer(dsn, rate, seed)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(dsn, first_id, stop, seen), daemon=True)
    watcher.start()
    follower, follower_pid = None, []
    if mode == "follow":  # (it outlasts the producer and the wait; cancelled when every order is seen)
        run_for = timedelta(seconds=seconds + wait + 10)
        follower = threading.Thread(target=_follow, args=(dsn, run_for, follower_pid), daemon=True)
        follower.start()
        time.sleep(0.5)
    else:
        schedule(dsn, "* * * * *")
    try:
        log(f"freshness ({mode}): producing {rate} orders/s for {seconds:.0f} s")
        producer.run(seconds, committed)
        last = committed[-1][1] if committed else first_id - 1
        deadline = time.monotonic() + wait
        while not all(i in seen for i in range(first_id, last + 1)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        watcher.join()
        if mode == "minute":
            unschedule(dsn)
        if follower is not None:
            if follower_pid:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    # (::integer: Citus adds a pg_cancel_backend of a bigint, its global process id)
                    conn.execute("SELECT pg_cancel_backend(%s::integer)", (follower_pid[0],))
            follower.join(timeout=60)
    latencies = [seen.get(i, float("inf")) - at for lo, hi, at in committed for i in range(lo, hi + 1)]
    if not latencies or max(latencies) == float("inf"):
        missing = sum(1 for latency in latencies if latency == float("inf"))
        raise FreshnessIncomplete(
            f"freshness ({mode}): {missing:,} of {len(latencies):,} orders were not visible "
            f"{wait} s after the producer stopped (the refresh is slower than the load)"
        )
    return Freshness(mode, len(latencies), statistics.median(latencies), percentile(latencies, 0.95), max(latencies))


@dataclass
class Sustained:
    """The highest producer rate follow mode kept up with: every order visible, p95 within the limit."""

    limit_p95: float
    seconds: float
    steps: list[tuple[int, float, float]]  # (rate asked, orders a second committed, p95; inf: not all visible)
    held: int = 0  # the highest rate asked that held (0: none did)
    stopped: str = ""  # why the search stopped

    def rows(self) -> list[list[str]]:
        """The rates tried, as rows of the sustained-rate table."""
        return [[f"{rate:,}", "—" if done != done else f"{done:,.0f}",  # (NaN: the run did not complete)
                 "not all visible" if p95 == float("inf") else f"{p95:.2f} s",
                 "held" if p95 <= self.limit_p95 else "not held"] for rate, done, p95 in self.steps]  # fmt: skip


def sustained_rate(dsn: str, seconds: float, start: int, seed: int, limit_p95: float = 5.0, steps: int = 6,
                   refine: int = 2, log: Callable[[str], None] = print) -> Sustained:  # fmt: skip
    """Follow mode under a producer committing orders (with items and payments) for ``seconds`` at
    each rate of ``search_rate``."""

    def attempt(rate: int, step: int) -> tuple[float, float]:
        try:
            figure = measure(dsn, "follow", seconds, rate, seed + step, log)
            return figure.orders / seconds, figure.p95
        except FreshnessIncomplete as exc:
            log(str(exc))
            return float("nan"), float("inf")

    return search_rate(attempt, Sustained(limit_p95, seconds, []), start, steps, refine)


def search_rate(attempt: Callable[[int, int], tuple[float, float]], result: Sustained, start: int, steps: int,
                refine: int) -> Sustained:  # fmt: skip
    """``start`` orders a second, then twice that, and so on (at most ``steps`` rates) until p95
    staged -> visible exceeds the limit, an order is not visible in time (p95 infinite), or the
    producer itself cannot commit at the rate asked (then the figure is the producer's limit, and
    says so). Then, between the highest rate held and the lowest that failed, ``refine`` more rates
    each halve the gap (rounded to hundreds). ``attempt(rate, step)`` runs one rate and returns
    (orders a second committed, p95)."""

    def run(rate: int, step: int) -> bool:
        done, p95 = attempt(rate, step)
        result.steps.append((rate, done, p95))
        if p95 > result.limit_p95:
            why = "orders not visible 20 s after the producer stopped" if p95 == float("inf") else "p95 above"
            result.stopped = f"{rate:,} orders/s: {why}" + (f" {result.limit_p95:g} s" if p95 != float("inf") else "")
            return False
        result.held = rate
        if done < 0.9 * rate:
            result.stopped = f"the producer committed {done:,.0f} of the {rate:,} orders/s asked (its own limit)"
            raise StopIteration
        return True

    rate = start
    try:
        for step in range(steps):
            if not run(rate, step):
                break
            rate *= 2
        else:
            result.stopped = f"the last rate tried ({rate // 2:,} orders/s) held"
            return result
        failed = rate  # the lowest rate that did not hold
        for step in range(steps, steps + refine):
            rate = int(round((result.held + failed) / 2, -2))
            if not result.held < rate < failed:
                break
            if not run(rate, step):
                failed = rate
    except StopIteration:
        pass
    return result
