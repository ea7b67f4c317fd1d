"""The OLTP source (docs/cdc.md): ``globalcart source init`` and
``globalcart source simulate``.

``init`` applies db/source/schema.sql to a database of its own: the shop's normalised tables and
the publication globalcart_cdc. ``simulate`` is the application: each action is one short
transaction, as a web shop commits them — a customer signs up, an order is placed with its lines
and a payment attempt (some fail: retried, or the order is cancelled), orders are shipped,
delivered, completed, some returned late and refunded (the order then RETURNED, as the warehouse
would derive it), and abandoned orders (placed, never paid)
are deleted with their lines and payments. Names, e-mail addresses and product names come from
Faker. The workload knows nothing of the warehouse: it writes the source, and the subscription
carries every commit to staging.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from faker import Faker

from driver.core.errors import DriverError, first_line
from driver.simulation.generator import (
    CARRIERS,
    CATEGORIES,
    CHANNELS,
    MARKETS,
    PAYMENT_METHODS,
    RETURN_REASONS,
    SEGMENTS,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "db" / "source" / "schema.sql"
PUBLICATION = "globalcart_cdc"
TABLES = ("customers", "products", "orders", "order_items", "payments", "shipments", "returns")

# what happens to an order, per order placed (the rest of the orders stay where they are)
ABANDONED = 0.06  # placed, never paid: deleted after a while
PAYMENT_FAILURE = 0.06  # a payment attempt fails: retried once, else the order is cancelled
RETURNED = 0.08  # of delivered orders


@dataclass
class WorkloadReport:
    """What the shop's workload did, action by action."""
    seconds: float = 0
    transactions: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        """Counts one action."""
        self.counts[what] = self.counts.get(what, 0) + n

    def line(self) -> str:
        """The counts as one line."""
        parts = ", ".join(f"{n:,} {what}" for what, n in self.counts.items())
        return f"{self.transactions:,} source transactions in {self.seconds:.1f} s: {parts or 'nothing'}"


KEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id", "order_items": "order_item_id",
        "payments": "payment_id", "shipments": "shipment_id", "returns": "return_id"}  # fmt: skip


def init_source(conn: psycopg.Connection, id_start: int | None = None) -> int:
    """Create the shop schema and its publication (idempotent); the number of published tables.
    ``id_start``: the shop's new keys start there (or after its greatest), apart from the keys of
    other producers of the same warehouse (the simulator's start at 1)."""
    try:
        conn.execute(SCHEMA_FILE.read_text())
        if id_start is not None:
            for table, key in KEYS.items():
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('shop.{table}', '{key}'), "
                    f"greatest(%s, (SELECT coalesce(max({key}), 0) + 1 FROM shop.{table})), false)",
                    (id_start,),
                )
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise DriverError(f"db/source/schema.sql failed, nothing of it was applied: {first_line(exc)}") from None
    wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    if wal_level != "logical":
        raise DriverError(
            f"the shop schema and publication {PUBLICATION} are in place, but this server has wal_level = "
            f"{wal_level}: set wal_level = logical (postgresql.conf or ALTER SYSTEM) and restart it before "
            "globalcart cdc attach.",
            3,
        )
    return int(
        conn.execute("SELECT count(*) FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,)).fetchone()[0]
    )


def _money(value: float) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


class Shop:
    """The application: one method per business action, each one transaction of ``conn``."""

    def __init__(self, conn: psycopg.Connection, seed: int | None = None, bad_rows: float = 0.0):
        self.conn = conn
        self.rng = random.Random(seed)  # noqa: S311 - simulated data, reproducible by seed
        self.fake = Faker()
        self.fake.seed_instance(seed)
        self.bad_rows = bad_rows
        self.report = WorkloadReport()
        self.on_order_commit: Callable[[int, datetime], None] | None = None  # (order_id, its updated_at)
        self._load()

    def _load(self) -> None:
        c = self.conn
        self.customers = [r[0] for r in c.execute("SELECT customer_id FROM shop.customers").fetchall()]
        self.products = c.execute("SELECT product_id, list_price_usd FROM shop.products").fetchall()
        self.by_status: dict[str, list[int]] = {s: [] for s in ("PLACED", "PAID", "SHIPPED", "DELIVERED")}
        for order_id, status in c.execute(
            "SELECT order_id, order_status FROM shop.orders WHERE order_status IN ('PLACED', 'PAID', 'SHIPPED', "
            "'DELIVERED')"
        ).fetchall():
            self.by_status[status].append(order_id)
        c.commit()

    def _commit(self, what: str, order_id: int | None = None, updated_at: datetime | None = None) -> None:
        self.conn.commit()
        self.report.transactions += 1
        self.report.add(what)
        if order_id is not None and updated_at is not None and self.on_order_commit:
            self.on_order_commit(order_id, updated_at)

    def _take(self, status: str) -> int | None:
        queue = self.by_status[status]
        if not queue:
            return None
        return queue.pop(self.rng.randrange(len(queue)))

    # -- the actions ---------------------------------------------------------------------------

    def add_products(self, n: int) -> None:
        """Adds products to the shop's catalogue."""
        rows = []
        for _ in range(n):
            category = self.rng.choice(list(CATEGORIES))
            low, high = CATEGORIES[category]
            rows.append((f"SKU-{self.fake.unique.bothify('??-#######').upper()}", self.fake.catch_phrase()[:60],
                         category, _money(self.rng.uniform(low, high))))  # fmt: skip
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO shop.products (sku, product_name, category, list_price_usd, updated_at) "
                "VALUES (%s, %s, %s, %s, now())",
                rows,
            )
        self.conn.commit()
        self.products = self.conn.execute("SELECT product_id, list_price_usd FROM shop.products").fetchall()
        self.conn.commit()
        self.report.transactions += 1
        self.report.add("products added", n)

    def sign_up(self) -> int:
        """A new customer signs up."""
        country, _currency, _locale, _share = self.rng.choices(MARKETS, weights=[m[3] for m in MARKETS])[0]
        customer_id = self.conn.execute(
            "INSERT INTO shop.customers (full_name, email, country_code, segment, updated_at) "
            "VALUES (%s, %s, %s, %s, now()) RETURNING customer_id",
            (self.fake.name(), self.fake.email(), country, self.rng.choice(SEGMENTS)),
        ).fetchone()[0]
        self.customers.append(customer_id)
        self._commit("customers signed up")
        return customer_id

    def place_order(self) -> int:
        """A customer places an order with its items."""
        if not self.customers or self.rng.random() < 0.2:
            customer_id = self.sign_up()
        else:
            customer_id = self.rng.choice(self.customers)
        c = self.conn
        country = c.execute(
            "SELECT country_code FROM shop.customers WHERE customer_id = %s", (customer_id,)
        ).fetchone()[0]
        currency = next((m[1] for m in MARKETS if m[0] == country), "USD")
        if self.bad_rows and self.rng.random() < self.bad_rows:
            currency = "XXX"  # the application accepts it; the warehouse knows no such currency
        order_id = c.execute(
            "INSERT INTO shop.orders (customer_id, channel, country_code, currency, updated_at) "
            "VALUES (%s, %s, %s, %s, now()) RETURNING order_id",
            (customer_id, self.rng.choice(CHANNELS), country, currency),
        ).fetchone()[0]
        gross = Decimal(0)
        for product_id, price in self.rng.sample(
            self.products, k=min(len(self.products), self.rng.choice([1, 1, 2, 3]))
        ):
            quantity = self.rng.choice([1, 1, 1, 2, 3])
            line = _money(float(price) * quantity)
            gross += line
            c.execute(
                "INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price, line_amount, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now())",
                (order_id, product_id, quantity, price, line),
            )
        shipping = _money(self.rng.choice([0, 0, 4.99, 9.99]))
        updated_at = c.execute(
            "UPDATE shop.orders SET gross_amount = %s, shipping_amount = %s, net_amount = %s WHERE order_id = %s "
            "RETURNING updated_at",
            (gross, shipping, gross + shipping, order_id),
        ).fetchone()[0]
        self._commit("orders placed", order_id, updated_at)
        self.by_status["PLACED"].append(order_id)
        return order_id

    def _set_status(self, order_id: int, status: str) -> datetime:
        return self.conn.execute(
            "UPDATE shop.orders SET order_status = %s WHERE order_id = %s RETURNING updated_at", (status, order_id)
        ).fetchone()[0]

    def pay(self) -> None:
        """An order is paid (some attempts fail)."""
        order_id = self._take("PLACED")
        if order_id is None:
            return
        c = self.conn
        if self.rng.random() < ABANDONED:  # never paid: the shop deletes it (lines and payments cascade)
            c.execute("DELETE FROM shop.orders WHERE order_id = %s", (order_id,))
            self._commit("abandoned orders deleted")
            return
        net, currency = c.execute(
            "SELECT net_amount, currency FROM shop.orders WHERE order_id = %s", (order_id,)
        ).fetchone()
        method = self.rng.choice(PAYMENT_METHODS)
        attempts = 2 if self.rng.random() < PAYMENT_FAILURE else 1
        paid = attempts == 1 or self.rng.random() < 0.7
        for attempt in range(attempts):
            status = "FAILED" if attempt < attempts - 1 or not paid else "CAPTURED"
            c.execute(
                "INSERT INTO shop.payments (order_id, payment_method, payment_status, amount, currency, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now())",
                (order_id, method, status, net, currency),
            )
        if paid:
            updated_at = self._set_status(order_id, "PAID")
            self.by_status["PAID"].append(order_id)
            self._commit("orders paid", order_id, updated_at)
        else:
            updated_at = self._set_status(order_id, "CANCELLED")
            self._commit("orders cancelled", order_id, updated_at)

    def ship(self) -> None:
        """An order is shipped."""
        order_id = self._take("PAID")
        if order_id is None:
            return
        self.conn.execute(
            "INSERT INTO shop.shipments (order_id, carrier, promised_ts, shipment_status, updated_at) "
            "VALUES (%s, %s, now() + interval '3 days', 'IN_TRANSIT', now())",
            (order_id, self.rng.choice(CARRIERS)),
        )
        updated_at = self._set_status(order_id, "SHIPPED")
        self.by_status["SHIPPED"].append(order_id)
        self._commit("orders shipped", order_id, updated_at)

    def deliver(self) -> None:
        """An order's shipment is delivered (some late)."""
        order_id = self._take("SHIPPED")
        if order_id is None:
            return
        late = self.rng.random() < 0.1
        self.conn.execute(
            "UPDATE shop.shipments SET delivered_ts = CASE WHEN %s THEN promised_ts + interval '1 day' ELSE now() END, "
            "shipment_status = 'DELIVERED' WHERE order_id = %s",
            (late, order_id),
        )
        updated_at = self._set_status(order_id, "DELIVERED")
        self.by_status["DELIVERED"].append(order_id)
        self._commit("orders delivered", order_id, updated_at)

    def settle(self) -> None:
        """A delivered order is completed — or returned late and refunded."""
        order_id = self._take("DELIVERED")
        if order_id is None:
            return
        c = self.conn
        if self.rng.random() < RETURNED:
            item_id, line = c.execute(
                "SELECT order_item_id, line_amount FROM shop.order_items WHERE order_id = %s ORDER BY order_item_id "
                "LIMIT 1",
                (order_id,),
            ).fetchone()
            return_id = c.execute(
                "INSERT INTO shop.returns (order_id, order_item_id, reason, refund_amount, updated_at) "
                "VALUES (%s, %s, %s, %s, now()) RETURNING return_id",
                (order_id, item_id, self.rng.choice(RETURN_REASONS), line),
            ).fetchone()[0]
            self._commit("returns requested")
            c.execute("UPDATE shop.returns SET return_status = 'REFUNDED' WHERE return_id = %s", (return_id,))
            c.execute(
                "UPDATE shop.payments SET payment_status = 'REFUNDED' WHERE order_id = %s AND payment_status = "
                "'CAPTURED'",
                (order_id,),
            )
            updated_at = self._set_status(order_id, "RETURNED")
            self._commit("returns refunded", order_id, updated_at)
        else:
            updated_at = self._set_status(order_id, "COMPLETED")
            self._commit("orders completed", order_id, updated_at)

    def update_customer(self) -> None:
        """A customer changes their details."""
        if not self.customers:
            return
        self.conn.execute(
            "UPDATE shop.customers SET segment = %s WHERE customer_id = %s",
            (self.rng.choice(SEGMENTS), self.rng.choice(self.customers)),
        )
        self._commit("customers updated")

    def step(self) -> None:
        """One order placed, and about one move of each kind for the orders under way."""
        self.place_order()
        for action in (self.pay, self.ship, self.deliver, self.settle):
            action()
        if self.rng.random() < 0.1:
            self.update_customer()


def run_workload(
    conn: psycopg.Connection,
    *,
    rate: float,
    seconds: float,
    seed: int | None = None,
    bad_rows: float = 0.0,
    on_order_commit: Callable[[int, datetime], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> WorkloadReport:
    """Run the shop for ``seconds`` at ``rate`` orders a second (each with the moves of the orders
    under way); products are added first where there are none."""
    if conn.execute("SELECT to_regclass('shop.orders')").fetchone()[0] is None:
        conn.rollback()
        raise DriverError("no shop schema in the source database: run globalcart source init --dsn URL first.")
    shop = Shop(conn, seed=seed, bad_rows=bad_rows)
    shop.on_order_commit = on_order_commit
    if len(shop.products) < 50:
        shop.add_products(200)
    started = time.monotonic()
    deadline = started + seconds
    n = 0
    while time.monotonic() < deadline and not (stop and stop()):
        shop.step()
        n += 1
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    shop.report.seconds = time.monotonic() - started
    return shop.report


def parse_duration(text: str) -> timedelta:
    """'90', '90s', '5m', '1h' as a duration."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 5m or 1h") from None
    if value <= 0:
        raise ValueError(f"{text!r} is not a duration: give more than 0")
    return timedelta(seconds=value * units[unit])
