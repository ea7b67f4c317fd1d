"""The simulated source: a base history (``seed``) and deltas (``simulate``) for staging.

Everything here only *produces* rows and COPYs them into ``globalcart.stg_*``; which version
wins, what is rejected and what a return does to an order is the refresh's business.

Realism comes from Faker where it shows (names, e-mail addresses, product names), drawn once
into per-locale pools; facts are generated in bulk with one ``random.Random`` so that the
same ``--seed`` (and the same as-of time) gives the same rows. Money is computed in cents.
"""

from __future__ import annotations

import bisect
import math
import random
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Queue

import psycopg
from faker import Faker

from driver import SOURCES, db

COLUMNS = {
    "customers": ("customer_id", "full_name", "email", "country_code", "signup_ts", "segment", "updated_at"),
    "products": ("product_id", "sku", "product_name", "category", "list_price_usd", "updated_at"),
    "orders": (
        "order_id", "customer_id", "order_ts", "order_status", "channel", "country_code", "currency",
        "gross_amount", "discount_amount", "shipping_amount", "net_amount", "updated_at",
    ),
    "order_items": (
        "order_item_id", "order_id", "product_id", "quantity", "unit_price", "discount_amount", "line_amount",
        "updated_at",
    ),
    "payments": (
        "payment_id", "order_id", "payment_ts", "payment_method", "payment_status", "amount", "currency",
        "updated_at",
    ),
    "shipments": (
        "shipment_id", "order_id", "carrier", "shipped_ts", "promised_ts", "delivered_ts", "shipment_status",
        "updated_at",
    ),
    "returns": (
        "return_id", "order_id", "order_item_id", "return_ts", "reason", "refund_amount", "return_status",
        "updated_at",
    ),
    "funnel_events": (
        "event_id", "session_id", "customer_id", "event_ts", "event_type", "product_id", "order_id",
        "cart_value_usd", "channel", "updated_at",
    ),
}  # fmt: skip
assert tuple(COLUMNS) == SOURCES

# country, currency, Faker locale, share of customers
MARKETS = [
    ("US", "USD", "en_US", 30), ("GB", "GBP", "en_GB", 9), ("DE", "EUR", "de_DE", 9), ("FR", "EUR", "fr_FR", 6),
    ("ES", "EUR", "es_ES", 4), ("IT", "EUR", "it_IT", 4), ("NL", "EUR", "nl_NL", 3), ("IN", "INR", "en_IN", 10),
    ("JP", "JPY", "ja_JP", 6), ("BR", "BRL", "pt_BR", 6), ("AU", "AUD", "en_AU", 4), ("CA", "CAD", "en_CA", 5),
    ("SG", "SGD", "en_US", 2), ("AE", "AED", "ar_AE", 2),
]  # fmt: skip
CATEGORIES = {  # category: (min, max) list price in USD
    "Electronics": (25, 1200), "Books": (5, 60), "Home & Kitchen": (8, 400), "Fashion": (10, 250),
    "Beauty": (5, 120), "Sports": (10, 500), "Toys": (5, 150), "Grocery": (2, 40),
}  # fmt: skip
SEGMENTS = (["CONSUMER"] * 7) + (["VIP"] * 1) + (["SMALL_BUSINESS"] * 2)
CHANNELS = (["web"] * 45) + (["mobile_app"] * 35) + (["marketplace"] * 12) + (["social"] * 8)
PAYMENT_METHODS = (["card"] * 55) + (["paypal"] * 15) + (["wallet"] * 15) + (["bank_transfer"] * 5) + (["cod"] * 10)
CARRIERS = ["DHL", "UPS", "FedEx", "USPS", "Royal Mail", "DPD", "Blue Dart", "Yamato", "Correios", "Aramex"]
RETURN_REASONS = ["damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery", "defective"]
ITEM_COUNTS = [1, 1, 1, 1, 2, 2, 2, 3, 3, 4]

PAYMENT_FAILURE = 0.055  # share of payment attempts that fail
RETRY_AFTER_FAILURE = 0.7  # a failed payment is retried successfully, else the order is cancelled
LATE_DELIVERY = 0.10  # share of shipments delivered after the promise
RETURN_SHARE = 0.07  # share of delivered orders returned
SESSIONS_PER_ORDER = 0.25  # funnel sessions generated per seeded order (a clickstream sample)


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and c.isalnum()).lower() or "user"


def _cents(value: int) -> float:
    """Cents as a float whose text form is the exact decimal (repr gives the shortest)."""
    return value / 100


@dataclass
class Ids:
    """Next free id of each kind; starts after what the warehouse and staging hold."""

    customer: int = 1
    product: int = 1
    order: int = 1
    item: int = 1
    payment: int = 1
    shipment: int = 1
    return_: int = 1

    @classmethod
    def after_existing(cls, conn: psycopg.Connection) -> Ids:
        def top(column: str, *tables: str) -> int:
            parts = " UNION ALL ".join(f"SELECT max({column}) AS m FROM globalcart.{t}" for t in tables)
            row = conn.execute(f"SELECT coalesce(max(m), 0) FROM ({parts}) x").fetchone()
            return int(row[0]) + 1 if row else 1

        return cls(
            customer=top("customer_id", "dim_customer", "stg_customers", "fact_orders"),
            product=top("product_id", "dim_product", "stg_products"),
            order=top("order_id", "fact_orders", "stg_orders"),
            item=top("order_item_id", "fact_order_items", "stg_order_items"),
            payment=top("payment_id", "fact_payments", "stg_payments"),
            shipment=top("shipment_id", "fact_shipments", "stg_shipments"),
            return_=top("return_id", "fact_returns", "stg_returns"),
        )


@dataclass
class Batch:
    """Rows for staging, per source, as tuples in COLUMNS order."""

    rows: dict[str, list[tuple]] = field(default_factory=lambda: {s: [] for s in SOURCES})
    orders: int = 0

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())


def copy_batch(conn: psycopg.Connection, batch: Batch) -> None:
    """COPY every source of the batch into its staging table, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        for source in SOURCES:
            rows = batch.rows[source]
            if not rows:
                continue
            with cur.copy(f"COPY globalcart.stg_{source} ({', '.join(COLUMNS[source])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


class Generator:
    """Deterministic generator of customers, products, orders and their related rows."""

    def __init__(self, seed: int, usd_rates: dict[str, float]):
        self.rng = random.Random(seed)  # noqa: S311 - simulated data, reproducible by seed
        self.usd_rates = usd_rates
        self.markets = [m for m in MARKETS if m[1] in usd_rates]
        self._market_cum = list(_cumulative(m[3] for m in self.markets))
        self.names: dict[str, tuple[list[str], list[str]]] = {}
        for i, (_, _, locale, _) in enumerate(self.markets):
            if locale not in self.names:
                fake = Faker(locale)
                fake.seed_instance(seed * 1000 + i)
                self.names[locale] = ([fake.first_name() for _ in range(300)], [fake.last_name() for _ in range(300)])
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.words = sorted({w.capitalize() for w in fake.words(400)})
        self.email_domains = sorted({fake.free_email_domain() for _ in range(50)})
        self.customers: list[tuple[int, str, str]] = []  # (customer_id, country, currency)
        self.products: list[tuple[int, int]] = []  # (product_id, list price in cents USD)
        self._product_cum: list[float] = []

    # -- dimensions -------------------------------------------------------------------------

    def make_customers(self, ids: Ids, count: int, as_of: datetime) -> list[tuple]:
        rng, rows = self.rng, []
        for _ in range(count):
            country, currency, locale, _ = self.markets[
                bisect.bisect(self._market_cum, rng.random() * self._market_cum[-1])
            ]
            first_names, last_names = self.names[locale]
            first, last = rng.choice(first_names), rng.choice(last_names)
            cid = ids.customer
            ids.customer += 1
            signup = as_of - timedelta(days=rng.uniform(30, 3 * 365))
            email = f"{_ascii(first)}.{_ascii(last)}{cid}@{rng.choice(self.email_domains)}"
            rows.append((cid, f"{first} {last}", email, country, signup, rng.choice(SEGMENTS), signup))
            self.customers.append((cid, country, currency))
        return rows

    def make_products(self, ids: Ids, count: int, as_of: datetime) -> list[tuple]:
        rng, rows = self.rng, []
        categories = list(CATEGORIES)
        for _ in range(count):
            pid = ids.product
            ids.product += 1
            category = rng.choice(categories)
            low, high = CATEGORIES[category]
            price = int(math.exp(rng.uniform(math.log(low), math.log(high))) * 100) - 1  # x.99 prices
            name = f"{rng.choice(self.words)} {rng.choice(self.words)} {category.split()[0]}"
            created = as_of - timedelta(days=rng.uniform(100, 700))
            rows.append((pid, f"{category[:3].upper()}-{pid:07d}", name, category, _cents(price), created))
            self.products.append((pid, price))
        # popularity: a long tail, the first products of the catalogue sell most
        self._product_cum = list(_cumulative(1 / (i + 10) for i in range(len(self.products))))
        return rows

    def load_dimensions(self, conn: psycopg.Connection) -> None:
        """Use the customers and products already in the warehouse (for deltas)."""
        self.customers = [
            (cid, country.strip(), currency)
            for cid, country, currency in conn.execute(
                """SELECT c.customer_id, c.country_code,
                          coalesce((SELECT o.currency FROM globalcart.fact_orders o
                                     WHERE o.customer_id = c.customer_id LIMIT 1), 'USD')
                   FROM globalcart.dim_customer c WHERE NOT c.is_inferred ORDER BY c.customer_id"""
            ).fetchall()
        ]
        self.products = [
            (pid, int(price * 100))
            for pid, price in conn.execute(
                "SELECT product_id, list_price_usd FROM globalcart.dim_product WHERE NOT is_inferred ORDER BY 1"
            ).fetchall()
        ]
        self._product_cum = list(_cumulative(1 / (i + 10) for i in range(len(self.products))))

    def pick_product(self) -> tuple[int, int]:
        return self.products[bisect.bisect(self._product_cum, self.rng.random() * self._product_cum[-1])]

    # -- orders and their children ----------------------------------------------------------

    def make_order(self, ids: Ids, batch: Batch, order_ts: datetime, as_of: datetime) -> None:
        """One order as it stands at ``as_of``, with items, payments, shipment, return."""
        rng, rows = self.rng, batch.rows
        cid, country, currency = rng.choice(self.customers)
        rate = self.usd_rates[currency]
        oid = ids.order
        ids.order += 1
        batch.orders += 1
        channel = rng.choice(CHANNELS)

        gross = discount = 0
        item_rows = []
        for _ in range(rng.choice(ITEM_COUNTS)):
            pid, price_usd = self.pick_product()
            unit = max(1, round(price_usd / rate))
            qty = 1 if rng.random() < 0.8 else rng.randint(2, 4)
            line_discount = round(unit * qty * rng.uniform(0.05, 0.2)) if rng.random() < 0.25 else 0
            gross += unit * qty
            discount += line_discount
            item_rows.append([ids.item, oid, pid, qty, _cents(unit), _cents(line_discount),
                              _cents(unit * qty - line_discount), order_ts])  # fmt: skip
            ids.item += 1
        shipping = 0 if gross * rate >= 5000 else round(499 / rate)
        net = gross - discount + shipping

        status, updated = "PLACED", order_ts
        payments, shipment, ret = [], None, None
        pay_ts = order_ts + timedelta(minutes=rng.uniform(0.5, 20))
        method = rng.choice(PAYMENT_METHODS)
        paid = False
        if pay_ts <= as_of:
            retried = True
            if rng.random() < PAYMENT_FAILURE:
                payments.append((ids.payment, oid, pay_ts, method, "FAILED", _cents(net), currency, pay_ts))
                ids.payment += 1
                if rng.random() < RETRY_AFTER_FAILURE:
                    pay_ts += timedelta(minutes=rng.uniform(1, 30))
                else:  # no retry: cancelled an hour later (still PLACED when that is after as_of)
                    retried = False
                    if pay_ts + timedelta(hours=1) <= as_of:
                        status, updated = "CANCELLED", pay_ts + timedelta(hours=1)
            if retried and pay_ts <= as_of:
                payments.append((ids.payment, oid, pay_ts, method, "CAPTURED", _cents(net), currency, pay_ts))
                ids.payment += 1
                status, updated, paid = "PAID", pay_ts, True
        if paid:
            shipped = pay_ts + timedelta(hours=rng.uniform(6, 48))
            promised = shipped + timedelta(days=rng.randint(3, 6))
            if rng.random() < LATE_DELIVERY:
                delivered = promised + timedelta(hours=rng.uniform(4, 96))
            else:
                delivered = shipped + timedelta(hours=rng.uniform(24, (promised - shipped).total_seconds() / 3600))
            if shipped <= as_of:
                sid = ids.shipment
                ids.shipment += 1
                carrier = rng.choice(CARRIERS)
                if delivered <= as_of:
                    shipment = (sid, oid, carrier, shipped, promised, delivered, "DELIVERED", delivered)
                    status, updated = "DELIVERED", delivered
                    if as_of - delivered > timedelta(days=7) and rng.random() < 0.8:
                        status, updated = "COMPLETED", delivered + timedelta(days=7)
                    if rng.random() < RETURN_SHARE:
                        return_ts = delivered + timedelta(days=rng.uniform(1, 14))
                        if return_ts <= as_of:
                            ret = self._return(ids, oid, item_rows, return_ts, net)
                else:
                    late = as_of > promised
                    shipment = (sid, oid, carrier, shipped, promised, None, "DELAYED" if late else "IN_TRANSIT",
                                promised if late else shipped)  # fmt: skip
                    status, updated = "SHIPPED", shipped
        rows["orders"].append((oid, cid, order_ts, status, channel, country, currency, _cents(gross),
                               _cents(discount), _cents(shipping), _cents(net), updated))  # fmt: skip
        rows["order_items"].extend(tuple(r) for r in item_rows)
        rows["payments"].extend(payments)
        if shipment:
            rows["shipments"].append(shipment)
        if ret:
            rows["returns"].append(ret)

    def _return(self, ids: Ids, oid: int, item_rows: list, return_ts: datetime, net_cents: int) -> tuple:
        rng = self.rng
        rid = ids.return_
        ids.return_ += 1
        item = rng.choice(item_rows)
        roll = rng.random()
        status = "REFUNDED" if roll < 0.7 else "APPROVED" if roll < 0.85 else "REQUESTED" if roll < 0.95 else "REJECTED"
        refund = min(net_cents, round(item[6] * 100)) if status != "REJECTED" else 0
        return (rid, oid, item[0], return_ts, rng.choice(RETURN_REASONS), _cents(refund), status, return_ts)

    # -- funnel -------------------------------------------------------------------------------

    def make_session(self, batch: Batch, start: datetime, order_ids: list[int], until: datetime) -> None:
        """One browsing session: most only look, some add to cart, a few check out and pay.
        Its events are seconds to minutes apart, none later than ``until``."""
        rng = self.rng
        sid = f"S{rng.getrandbits(48):012x}"
        customer = rng.choice(self.customers)[0] if rng.random() < 0.7 else None
        channel = rng.choice(CHANNELS)
        events: list[tuple[str, int | None, int | None, float | None]] = [("PAGE_VIEW", None, None, None)]
        cart = 0
        if rng.random() < 0.6:
            for _ in range(rng.randint(1, 3)):
                events.append(("PRODUCT_VIEW", self.pick_product()[0], None, None))
        if len(events) > 1 and rng.random() < 0.17:
            for _ in range(rng.randint(1, 2)):
                pid, price = self.pick_product()
                cart += price
                events.append(("ADD_TO_CART", pid, None, _cents(cart)))
            if rng.random() < 0.40:
                events.append(("CHECKOUT_START", None, None, _cents(cart)))
                if rng.random() < 0.9:
                    events.append(("PAYMENT_ATTEMPT", None, None, _cents(cart)))
                    failed = rng.random() < PAYMENT_FAILURE * 1.5
                    if failed:
                        events.append(("PAYMENT_FAILED", None, None, _cents(cart)))
                    if not failed or rng.random() < 0.5:
                        if failed:
                            events.append(("PAYMENT_ATTEMPT", None, None, _cents(cart)))
                        order_id = rng.choice(order_ids) if order_ids else None
                        events.append(("PURCHASE", None, order_id, _cents(cart)))
        ts = start
        for event_type, pid, oid, value in events:
            eid = uuid.UUID(int=self.rng.getrandbits(128), version=4)
            batch.rows["funnel_events"].append((eid, sid, customer, ts, event_type, pid, oid, value, channel, ts))
            ts = min(until, ts + timedelta(seconds=rng.uniform(3, 180)))


def _cumulative(weights: Iterator[float] | list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def usd_rates(conn: psycopg.Connection) -> dict[str, float]:
    return {code.strip(): float(rate) for code, rate in conn.execute(
        "SELECT currency_code, usd_rate FROM globalcart.dim_currency").fetchall()}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# seed: the base history, through staging and the refresh like every delta
# ---------------------------------------------------------------------------------------------


@dataclass
class SeedReport:
    orders: int
    rows_staged: int
    refreshes: int  # calls that did work (each wrote an etl_runs row)
    seconds: float
    rejected: int


def seed_history(
    conn: psycopg.Connection,
    producer_dsn: str,
    *,
    orders: int,
    seed: int = 360,
    as_of: datetime,
    days: int = 90,
    chunk_orders: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Generate ``orders`` orders over the ``days`` before ``as_of`` (with customers, products,
    items, payments, shipments, returns and funnel sessions), COPY them to staging chunk by
    chunk on a second connection, and refresh as the chunks land: generation in Python and the
    refresh in the server overlap."""
    started = time.monotonic()
    gen = Generator(seed, usd_rates(conn))
    ids = Ids.after_existing(conn)
    conn.commit()
    first = Batch()
    first.rows["customers"] = gen.make_customers(ids, max(50, orders // 4), as_of)
    first.rows["products"] = gen.make_products(ids, min(5000, max(30, orders // 50)), as_of)
    start = as_of - timedelta(days=days)
    span = (as_of - start).total_seconds()
    order_times = sorted(start + timedelta(seconds=gen.rng.uniform(0, span)) for _ in range(orders))
    sessions = max(1, round(orders * SESSIONS_PER_ORDER))
    session_starts = sorted(start + timedelta(seconds=gen.rng.uniform(0, span)) for _ in range(sessions))

    done = threading.Event()
    landed: Queue[tuple[int, int] | BaseException | None] = Queue()

    def produce() -> None:
        try:
            with psycopg.connect(producer_dsn, application_name="globalcart-seed") as producer:
                batch = first
                order_ids: list[int] = []
                for lo in range(0, max(orders, 1), chunk_orders):
                    chunk_times = order_times[lo : lo + chunk_orders]
                    first_id = ids.order
                    for ts in chunk_times:
                        gen.make_order(ids, batch, ts, as_of)
                    order_ids = list(range(first_id, ids.order))
                    s_lo = lo * sessions // max(orders, 1)
                    s_hi = (lo + len(chunk_times)) * sessions // max(orders, 1)
                    for ts in session_starts[s_lo:s_hi]:
                        gen.make_session(batch, ts, order_ids, as_of)
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
            staged_orders += item[0]
            rows += item[1]
            while not landed.empty() and isinstance(landed.queue[0], tuple):  # take what else has landed
                more = landed.get()
                staged_orders += more[0]
                rows += more[1]
            summary = db.run_refresh(conn)
            refreshes += summary["run_id"] is not None
            rejected += int(summary["totals"]["rejected"])
            if progress:
                progress(staged_orders, orders)
    finally:
        done.set()
        thread.join()
    summary = db.run_refresh(conn)  # anything left
    refreshes += summary["run_id"] is not None
    rejected += int(summary["totals"]["rejected"])
    return SeedReport(staged_orders, rows, refreshes, time.monotonic() - started, rejected)


class ProgressBar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._last_pct = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total == 0 else min(100, done * 100 // total)
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = pct * 30 // 100
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {pct:3d}% "
                              f"{done:,}/{total:,} orders {elapsed:5.1f}s")  # fmt: skip
            if pct == 100:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 10 != self._last_pct // 10 or pct == 100:
            self.stream.write(f"{self.label}: {pct}% ({done:,}/{total:,} orders, {elapsed:.1f}s)\n")
            self.stream.flush()
        self._last_pct = pct


# ---------------------------------------------------------------------------------------------
# simulate: the deltas of a time window
# ---------------------------------------------------------------------------------------------

BAD_ROW_KINDS = (
    "orders: unknown currency", "orders: negative amount", "order_items: non-positive quantity",
    "payments: unknown status", "shipments: missing carrier", "returns: negative refund",
    "funnel_events: unknown event type", "customers: missing email",
)  # fmt: skip


@dataclass
class DeltaReport:
    since: datetime
    until: datetime
    kinds: dict[str, int]
    rows: int


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
    for source in SOURCES:
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
