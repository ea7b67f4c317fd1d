"""The simulated source's data: customers, products, orders with their items, payments, shipments
and returns, and funnel sessions, as rows for staging.

Realism comes from Faker where it shows (names, e-mail addresses, product names), drawn once
into per-locale pools; facts are generated in bulk with one ``random.Random`` so that the
same seed (and the same as-of time) gives the same rows. Money is computed in cents. Nothing
here decides which version wins, what is rejected or what a return does to an order: that is
the refresh's business. Every version is as its record stood at ``as_of``: nothing lies after it.
"""

from __future__ import annotations

import bisect
import math
import random
import unicodedata
import uuid
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from faker import Faker

from driver.core.errors import DriverError

# The row layout of each source the generator makes: the business columns of its staging table
# (globalcart.etl_sources), in the order of the tuples below. tests/test_registry.py checks it
# against the database.
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
        """After the ids in the warehouse — and in staging, where this role may read it (a producer
        that is only a globalcart_loader may not: it relies on staging having been refreshed)."""
        readable = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'globalcart'::regnamespace "
                "AND c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'SELECT')"
            ).fetchall()
        }

        def top(column: str, *tables: str) -> int:
            if not readable & set(tables):
                raise DriverError(
                    f"the simulator reads globalcart.{tables[0]} to continue its ids: run it as a member of "
                    "globalcart_reader (and globalcart_loader, to stage)."
                )
            parts = " UNION ALL ".join(
                f"SELECT max({column}) AS m FROM globalcart.{t}" for t in tables if t in readable
            )
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

    rows: dict[str, list[tuple]] = field(default_factory=lambda: {s: [] for s in COLUMNS})
    orders: int = 0

    def count(self) -> int:
        """Rows of every source in the batch."""
        return sum(len(r) for r in self.rows.values())


class Customers(Sequence[tuple[int, str, str]]):
    """The customers orders are drawn from, as (customer_id, country, currency), held compactly (an
    id and a market number each: ten bytes a customer, not a tuple of objects), so that a seed of
    millions of customers fits in little memory."""

    def __init__(self, markets: list[tuple[str, str]]):
        self._markets = markets  # (country, currency) by number
        self._index = {m: i for i, m in enumerate(markets)}
        self._ids = array("q")
        self._market = array("H")

    def append(self, customer: tuple[int, str, str]) -> None:
        """Adds one customer (its id, country and currency)."""
        cid, country, currency = customer
        key = (country, currency)
        if key not in self._index:
            self._index[key] = len(self._markets)
            self._markets.append(key)
        self._ids.append(cid)
        self._market.append(self._index[key])

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return (self._ids[i], *self._markets[self._market[i]])


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
        self.customers = Customers([(m[0], m[1]) for m in self.markets])  # (customer_id, country, currency)
        self.products: list[tuple[int, int]] = []  # (product_id, list price in cents USD)
        self._product_cum: list[float] = []

    # -- dimensions -------------------------------------------------------------------------

    def make_customers(self, ids: Ids, count: int, as_of: datetime) -> list[tuple]:
        """``count`` new customers, signed up before ``as_of``."""
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
        """``count`` new products of the catalogue."""
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
        self.customers = Customers([(m[0], m[1]) for m in self.markets])
        # a customer pays in its market's currency (as make_customers made them); a country the
        # simulator does not sell in, in USD
        currency_of = {country: currency for country, currency, *_ in self.markets}
        with conn.cursor() as cur:  # streamed: a warehouse's customers are never all in memory as rows
            for cid, country in cur.stream(
                "SELECT c.customer_id, c.country_code FROM globalcart.dim_customer c WHERE NOT c.is_inferred "
                "ORDER BY c.customer_id"
            ):
                self.customers.append((cid, country.strip(), currency_of.get(country.strip(), "USD")))
        self.products = [
            (pid, int(price * 100))
            for pid, price in conn.execute(
                "SELECT product_id, list_price_usd FROM globalcart.dim_product WHERE NOT is_inferred ORDER BY 1"
            ).fetchall()
        ]
        self._product_cum = list(_cumulative(1 / (i + 10) for i in range(len(self.products))))

    def pick_product(self) -> tuple[int, int]:
        """A product of the catalogue, popular ones more often."""
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
    """The warehouse's currency rates (dim_currency), for the generator's amounts."""
    return {code.strip(): float(rate) for code, rate in conn.execute(
        "SELECT currency_code, usd_rate FROM globalcart.dim_currency").fetchall()}  # fmt: skip
