"""``simulate``: the deltas of a time window, every kind of change the seed document lists
(new orders and sessions, status changes, late returns, shipments turning late), plus the
producer's faults (duplicates, older versions arriving late, bad rows), staged with COPY.

Which stored rows change is sampled in SQL, deterministically for a seed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from driver.core.errors import DriverError
from driver.core.output import render_table
from driver.simulation.generator import CARRIERS, COLUMNS, RETURN_REASONS, Batch, Generator, Ids, usd_rates
from driver.simulation.staging import copy_batch

BAD_ROW_KINDS = (
    "orders: unknown currency", "orders: negative amount", "order_items: non-positive quantity",
    "payments: unknown status", "shipments: missing carrier", "returns: negative refund",
    "funnel_events: unknown event type", "customers: missing email",
)  # fmt: skip


@dataclass
class DeltaReport:
    """What a window's delta staged: the window, and the rows of each kind of change."""
    since: datetime
    until: datetime
    kinds: dict[str, int]
    rows: int

    def table(self) -> str:
        """What ``simulate`` staged: the window and the rows of each kind of change."""
        return (
            f"staged {self.rows:,} rows for {self.since:%Y-%m-%d %H:%M:%S%z} .. {self.until:%Y-%m-%d %H:%M:%S%z}\n"
            + render_table(["change", "rows"], [[k, f"{v:,}"] for k, v in self.kinds.items()])
        )


def _sample(conn: psycopg.Connection, sql: str, params: tuple, seed: int, limit: int) -> list[tuple]:
    """Rows of ``sql`` (whose first column, ``k``, is a key) in a deterministic pseudo-random
    order of that key and the seed, at most ``limit``; the key is dropped."""
    if limit <= 0:
        return []
    rows = conn.execute(
        f"SELECT * FROM ({sql}) s ORDER BY md5(s.k::text || %s::text) LIMIT %s", (*params, seed, limit)
    ).fetchall()
    return [row[1:] for row in rows]


def default_new_orders(conn: psycopg.Connection, since: datetime, until: datetime) -> int:
    """The warehouse's order rate over the week before ``until``, over the window (20 to 50,000)."""
    row = conn.execute(
        "SELECT count(*) FROM globalcart.fact_orders WHERE order_ts > %s::timestamptz - interval '7 days' "
        "AND order_ts <= %s",
        (until, until),
    ).fetchone()
    per_hour = (row[0] if row else 0) / (7 * 24) or 100
    hours = (until - since).total_seconds() / 3600
    return int(min(50_000, max(20, round(per_hour * hours))))


def generate_delta(
    conn: psycopg.Connection,
    *,
    since: datetime,
    until: datetime,
    seed: int,
    new_orders: int,
    duplicate_share: float = 0.05,
    out_of_order_share: float = 0.05,
    bad_rows: int = 0,
) -> tuple[Batch, DeltaReport]:
    """Every kind of change the seed document lists, with ``updated_at`` inside (since, until]."""
    gen = Generator(seed, usd_rates(conn))
    gen.load_dimensions(conn)
    ids = Ids.after_existing(conn)
    rng = gen.rng
    batch = Batch()
    rows = batch.rows
    span = (until - since).total_seconds()

    def when() -> datetime:
        return since + timedelta(seconds=rng.uniform(span * 0.001, span))

    kinds: dict[str, int] = {}

    # new orders (as they stand at `until`) and browsing sessions
    first_new = ids.order
    for ts in sorted(since + timedelta(seconds=rng.uniform(0, span)) for _ in range(new_orders)):
        if ts > since:
            gen.make_order(ids, batch, ts, until)
    kinds["new orders"] = ids.order - first_new
    new_ids = list(range(first_new, ids.order))
    for _ in range(new_orders * 3):
        gen.make_session(batch, when(), new_ids, until)
    kinds["funnel events"] = len(rows["funnel_events"])

    order_cols = ", ".join(COLUMNS["orders"])
    ship_cols = ", ".join(COLUMNS["shipments"])
    updated_orders: list[tuple] = []  # the stored versions this delta replaces

    def new_version(stored: tuple, status: str, ts: datetime) -> tuple:
        row = list(stored)
        row[3], row[11] = status, max(ts, stored[11] + timedelta(seconds=1))
        return tuple(row)

    # PAID -> SHIPPED: a shipment is created
    shipped_now = 0
    for stored in _sample(
        conn,
        f"SELECT order_id AS k, {order_cols} FROM globalcart.fact_orders "
        "WHERE order_status = 'PAID' AND updated_at < %s",
        (since,),
        seed,
        new_orders // 3,
    ):
        version = new_version(stored, "SHIPPED", when())
        shipped = version[11]
        rows["orders"].append(version)
        rows["shipments"].append(
            (
                ids.shipment,
                version[0],
                rng.choice(CARRIERS),
                shipped,
                shipped + timedelta(days=rng.randint(3, 6)),
                None,
                "IN_TRANSIT",
                shipped,
            )
        )
        ids.shipment += 1
        updated_orders.append(stored)
        shipped_now += 1
    kinds["orders PAID -> SHIPPED"] = shipped_now

    # SHIPPED -> DELIVERED: the shipment is delivered
    delivered = 0
    order_part_cols = ", ".join("o." + c for c in COLUMNS["orders"])
    ship_part_cols = ", ".join("s." + c for c in COLUMNS["shipments"])
    for stored in _sample(
        conn,
        f"SELECT o.order_id AS k, {order_part_cols}, {ship_part_cols} "
        "FROM globalcart.fact_orders o JOIN globalcart.fact_shipments s USING (order_id) "
        "WHERE o.order_status = 'SHIPPED' AND s.delivered_ts IS NULL AND o.updated_at < %s",
        (since,),
        seed + 1,
        new_orders // 3,
    ):
        order_part, ship = stored[:12], stored[12:]
        version = new_version(order_part, "DELIVERED", when())
        rows["orders"].append(version)
        rows["shipments"].append((*ship[:5], version[11], "DELIVERED", version[11]))
        updated_orders.append(order_part)
        delivered += 1
    kinds["orders SHIPPED -> DELIVERED"] = delivered

    # DELIVERED -> COMPLETED
    completed = 0
    for stored in _sample(
        conn,
        f"SELECT order_id AS k, {order_cols} FROM globalcart.fact_orders "
        "WHERE order_status = 'DELIVERED' AND updated_at < %s",
        (since - timedelta(days=1),),
        seed + 2,
        new_orders // 2,
    ):
        rows["orders"].append(new_version(stored, "COMPLETED", when()))
        updated_orders.append(stored)
        completed += 1
    kinds["orders DELIVERED -> COMPLETED"] = completed

    # late-arriving returns, days after delivery: the refresh turns their orders RETURNED
    returns = 0
    for oid, item_id, line_amount in _sample(
        conn,
        "SELECT o.order_id AS k, o.order_id, "
        "       (SELECT min(i.order_item_id) FROM globalcart.fact_order_items i WHERE i.order_id = o.order_id), "
        "       (SELECT max(i.line_amount) FROM globalcart.fact_order_items i WHERE i.order_id = o.order_id) "
        "FROM globalcart.fact_orders o JOIN globalcart.fact_shipments s USING (order_id) "
        "WHERE o.order_status IN ('DELIVERED', 'COMPLETED') "
        "AND s.delivered_ts < %s::timestamptz - interval '2 days' "
        "AND NOT EXISTS (SELECT 1 FROM globalcart.fact_returns r WHERE r.order_id = o.order_id)",
        (since,),
        seed + 3,
        max(1, new_orders // 4),
    ):
        ts = when()
        status = "REFUNDED" if rng.random() < 0.6 else "REQUESTED"
        refund = line_amount if status == "REFUNDED" and line_amount is not None else 0
        rows["returns"].append((ids.return_, oid, item_id, ts, rng.choice(RETURN_REASONS), refund, status, ts))
        ids.return_ += 1
        returns += 1
    kinds["late returns"] = returns

    # a delivered shipment's date moves past the promise: the SLA becomes breached
    breached = 0
    for stored in _sample(
        conn,
        f"SELECT shipment_id AS k, {ship_cols} FROM globalcart.fact_shipments "
        "WHERE delivered_ts IS NOT NULL AND NOT sla_breached_flag AND updated_at < %s",
        (since,),
        seed + 4,
        max(1, new_orders // 10),
    ):
        ship = list(stored)
        ship[5] = ship[4] + timedelta(hours=rng.uniform(2, 72))  # delivered after promised
        ship[6] = "DELAYED"
        ship[7] = max(when(), stored[7] + timedelta(seconds=1))
        rows["shipments"].append(tuple(ship))
        breached += 1
    kinds["shipments turned late"] = breached

    # out-of-order: an older version of a changed order arrives after the newer one
    late_versions = [v for v in updated_orders if rng.random() < out_of_order_share]
    rows["orders"].extend(late_versions)
    kinds["older versions (out of order)"] = len(late_versions)

    # duplicates: the producer sends some rows twice
    duplicates = 0
    for source in COLUMNS:
        extra = [r for r in rows[source] if rng.random() < duplicate_share]
        rows[source].extend(extra)
        duplicates += len(extra)
    kinds["duplicates"] = duplicates

    for n in range(bad_rows):
        _add_bad_row(
            batch,
            ids,
            BAD_ROW_KINDS[n % len(BAD_ROW_KINDS)],
            since + timedelta(seconds=span * (n + 1) / (bad_rows + 1)),
        )
    kinds["bad rows"] = bad_rows
    return batch, DeltaReport(since, until, kinds, batch.count())


def _add_bad_row(batch: Batch, ids: Ids, kind: str, ts: datetime) -> None:
    """One invalid row of the given kind; the refresh must quarantine it and apply the rest."""
    rows = batch.rows
    oid = ids.order
    ids.order += 1
    good_order = (oid, 1, ts, "PLACED", "web", "US", "USD", 10.0, 0.0, 0.0, 10.0, ts)
    if kind == "orders: unknown currency":
        rows["orders"].append((*good_order[:6], "XXX", *good_order[7:]))
    elif kind == "orders: negative amount":
        rows["orders"].append((*good_order[:10], -10.0, ts))
    elif kind == "order_items: non-positive quantity":
        rows["order_items"].append((ids.item, oid, 1, 0, 5.0, 0.0, 0.0, ts))
        ids.item += 1
    elif kind == "payments: unknown status":
        rows["payments"].append((ids.payment, oid, ts, "card", "PENDING", 10.0, "USD", ts))
        ids.payment += 1
    elif kind == "shipments: missing carrier":
        rows["shipments"].append((ids.shipment, oid, None, ts, ts + timedelta(days=3), None, "CREATED", ts))
        ids.shipment += 1
    elif kind == "returns: negative refund":
        rows["returns"].append((ids.return_, oid, None, ts, "damaged", -5.0, "REQUESTED", ts))
        ids.return_ += 1
    elif kind == "funnel_events: unknown event type":
        eid = uuid.UUID(int=oid, version=4)
        rows["funnel_events"].append((eid, f"BAD{oid}", None, ts, "CLICK", None, None, None, "web", ts))
    elif kind == "customers: missing email":
        rows["customers"].append((ids.customer, "No Email", None, "US", ts, "CONSUMER", ts))
        ids.customer += 1


def stage_window(
    conn: psycopg.Connection,
    *,
    since: datetime | None,
    until: datetime | None,
    seed: int,
    orders: int | None = None,
    duplicates: float = 0.05,
    out_of_order: float = 0.05,
    bad_rows: int = 0,
) -> DeltaReport:
    """Generate the deltas of the window (since, until] and COPY them to staging. ``until``
    defaults to now, ``since`` to the orders watermark, ``orders`` to the warehouse's recent rate."""
    until = until or datetime.now(UTC)
    if since is None:
        row = conn.execute("SELECT watermark_ts FROM globalcart.etl_watermarks WHERE source_name = 'orders'").fetchone()
        since = row[0] if row and row[0] else until - timedelta(hours=1)
        if since >= until:
            raise DriverError(
                f"the orders watermark ({since.isoformat()}) is not before --until ({until.isoformat()}): "
                "nothing to simulate; pass --since.", 2
            )  # fmt: skip
    if since >= until:
        raise DriverError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()}).", 2)
    if not conn.execute("SELECT EXISTS (SELECT 1 FROM globalcart.dim_customer WHERE NOT is_inferred)").fetchone()[0]:
        raise DriverError("the warehouse has no customers yet: run `python -m driver seed` first.")
    new_orders = orders if orders is not None else default_new_orders(conn, since, until)
    batch, report = generate_delta(
        conn, since=since, until=until, seed=seed, new_orders=new_orders,
        duplicate_share=duplicates, out_of_order_share=out_of_order, bad_rows=bad_rows,
    )  # fmt: skip
    conn.commit()
    copy_batch(conn, batch)
    return report
