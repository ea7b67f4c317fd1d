"""``seed``: a base history through staging and the refresh, like every delta.

The history is generated in chunks on one thread and COPYed to staging on its own connection,
while the refresh of the chunks that have landed runs on another: generation in Python and the
refresh in the server overlap. The generator stays at most ``ahead_orders`` orders ahead of the
refresh: each call then claims every row staged (far below ``max_rows_per_run``), so an order's
children land in the call that applies it (the bulk path, no fact read back), and what the refresh
counts in staging stays small — a generator far ahead makes both cost O(backlog) per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from queue import Queue

import psycopg

from driver.core import db
from driver.simulation.generator import SESSIONS_PER_ORDER, Batch, Generator, Ids, usd_rates
from driver.simulation.staging import copy_batch

CUSTOMER_CHUNK = 100_000
AHEAD_ORDERS = 100_000  # about 600,000 staged rows: items, the most numerous, twice the orders


@dataclass
class SeedReport:
    """What a seed did: orders and rows staged, refresh calls, rows rejected, seconds."""
    orders: int
    rows_staged: int
    refreshes: int  # calls that did work (each wrote an etl_runs row)
    seconds: float
    rejected: int
    most_ahead: int = 0  # the most orders staged and not yet taken by a refresh call at once


def seed_history(
    conn: psycopg.Connection,
    producer_dsn: str,
    *,
    orders: int,
    seed: int = 360,
    as_of: datetime,
    days: int = 90,
    chunk_orders: int = 20_000,
    ahead_orders: int = AHEAD_ORDERS,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Generate ``orders`` orders over the ``days`` before ``as_of`` (with customers, products,
    items, payments, shipments, returns and funnel sessions), COPY them to staging chunk by
    chunk on a second connection, and refresh as the chunks land: generation in Python and the
    refresh in the server overlap; the generator waits while ``ahead_orders`` orders it has staged
    are not yet taken by a refresh call (a chunk is always let through when none are)."""
    if chunk_orders < 1 or ahead_orders < 1:
        raise ValueError("chunk_orders and ahead_orders must be at least 1")
    started = time.monotonic()
    gen = Generator(seed, usd_rates(conn))
    ids = Ids.after_existing(conn)
    conn.commit()
    start = as_of - timedelta(days=days)
    span = (as_of - start).total_seconds()
    sessions = max(1, round(orders * SESSIONS_PER_ORDER))
    rng = gen.rng

    def times(lo: int, hi: int, total: int) -> list[datetime]:
        """The ``lo``-th to ``hi``-th of ``total`` sorted uniform times over the history: drawn
        within the chunk's own share of the span, so that no list of every time is held."""
        a, b = span * lo / total, span * hi / total
        return [start + timedelta(seconds=x) for x in sorted(rng.uniform(a, b) for _ in range(hi - lo))]

    done = threading.Event()
    landed: Queue[tuple[int, int] | BaseException | None] = Queue()
    # orders staged and not yet taken by a refresh call (the refreshing thread subtracts what a call
    # took once it returns); the producer waits on it before each COPY of orders
    ahead = threading.Condition()
    in_flight = [0, 0]  # [orders now, the most at once]

    def wait_for_refresh(orders_next: int) -> None:
        with ahead:
            ahead.wait_for(lambda: done.is_set() or in_flight[0] == 0 or in_flight[0] + orders_next <= ahead_orders)
            in_flight[0] += orders_next
            in_flight[1] = max(in_flight[1], in_flight[0])

    def taken(orders_done: int) -> None:
        with ahead:
            in_flight[0] -= orders_done
            ahead.notify_all()

    def produce() -> None:
        try:
            with psycopg.connect(producer_dsn, application_name="globalcart-seed") as producer:
                # customers in chunks of their own, each COPYed and let go: a seed of millions of
                # customers never holds their rows at once (the generator keeps ten bytes of each)
                customers = max(50, orders // 4)
                for lo in range(0, customers, CUSTOMER_CHUNK):
                    batch = Batch()
                    batch.rows["customers"] = gen.make_customers(ids, min(CUSTOMER_CHUNK, customers - lo), as_of)
                    copy_batch(producer, batch)
                    landed.put((0, batch.count()))
                batch = Batch()
                batch.rows["products"] = gen.make_products(ids, min(5000, max(30, orders // 50)), as_of)
                order_ids: list[int] = []
                for lo in range(0, max(orders, 1), chunk_orders):
                    chunk_times = times(lo, min(orders, lo + chunk_orders), max(orders, 1))
                    first_id = ids.order
                    for ts in chunk_times:
                        gen.make_order(ids, batch, ts, as_of)
                    order_ids = list(range(first_id, ids.order))
                    s_lo = lo * sessions // max(orders, 1)
                    s_hi = (lo + len(chunk_times)) * sessions // max(orders, 1)
                    for ts in times(s_lo, s_hi, sessions):
                        gen.make_session(batch, ts, order_ids, as_of)
                    wait_for_refresh(batch.orders)
                    if done.is_set():
                        return
                    copy_batch(producer, batch)
                    landed.put((batch.orders, batch.count()))
                    batch = Batch()
                    if done.is_set():
                        return
        except BaseException as exc:  # handed to the refreshing thread, which raises it
            landed.put(exc)
        finally:
            landed.put(None)

    thread = threading.Thread(target=produce, name="globalcart-seed-producer", daemon=True)
    thread.start()
    staged_orders = rows = refreshes = rejected = 0
    try:
        while True:
            item = landed.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            batch_orders = item[0]
            rows += item[1]
            while not landed.empty() and isinstance(landed.queue[0], tuple):  # take what else has landed
                more = landed.get()
                batch_orders += more[0]
                rows += more[1]
            staged_orders += batch_orders
            summary = db.run_refresh(conn)
            refreshes += summary["run_id"] is not None
            rejected += int(summary["totals"]["rejected"])
            taken(batch_orders)
            if progress:
                progress(staged_orders, orders)
    finally:
        done.set()
        with ahead:
            ahead.notify_all()
        thread.join()
    # what is left: a call takes at most max_rows_per_run rows of each source (a setting below what
    # the generator stages ahead leaves rows behind) — the seed is done when staging is empty
    while True:
        summary = db.run_refresh(conn)
        refreshes += summary["run_id"] is not None
        rejected += int(summary["totals"]["rejected"])
        if summary["run_id"] is None or not summary["totals"]["backlog"]:
            break
        if progress:
            progress(staged_orders, orders)
    return SeedReport(staged_orders, rows, refreshes, time.monotonic() - started, rejected, in_flight[1])
