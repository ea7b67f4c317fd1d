"""docs/contract.md §1: the tables, columns, types and keys that producers and BI rely on."""

import pytest
from helpers import fetch, scalar

M = "numeric(14,2)"
TS = "timestamp with time zone"
CONTRACT = {
    "dim_customer": [
        ("customer_id", "bigint"),
        ("full_name", "text"),
        ("email", "text"),
        ("country_code", "character(2)"),
        ("signup_ts", TS),
        ("segment", "text"),
        ("updated_at", TS),
    ],
    "dim_product": [
        ("product_id", "bigint"),
        ("sku", "text"),
        ("product_name", "text"),
        ("category", "text"),
        ("list_price_usd", M),
        ("updated_at", TS),
    ],
    "fact_orders": [
        ("order_id", "bigint"),
        ("customer_id", "bigint"),
        ("order_ts", TS),
        ("order_status", "text"),
        ("channel", "text"),
        ("country_code", "character(2)"),
        ("currency", "character(3)"),
        ("gross_amount", M),
        ("discount_amount", M),
        ("shipping_amount", M),
        ("net_amount", M),
        ("updated_at", TS),
    ],
    "fact_order_items": [
        ("order_item_id", "bigint"),
        ("order_id", "bigint"),
        ("product_id", "bigint"),
        ("quantity", "integer"),
        ("unit_price", M),
        ("discount_amount", M),
        ("line_amount", M),
        ("updated_at", TS),
    ],
    "fact_payments": [
        ("payment_id", "bigint"),
        ("order_id", "bigint"),
        ("payment_ts", TS),
        ("payment_method", "text"),
        ("payment_status", "text"),
        ("amount", M),
        ("currency", "character(3)"),
        ("updated_at", TS),
    ],
    "fact_shipments": [
        ("shipment_id", "bigint"),
        ("order_id", "bigint"),
        ("carrier", "text"),
        ("shipped_ts", TS),
        ("promised_ts", TS),
        ("delivered_ts", TS),
        ("shipment_status", "text"),
        ("sla_breached_flag", "boolean"),
        ("updated_at", TS),
    ],
    "fact_returns": [
        ("return_id", "bigint"),
        ("order_id", "bigint"),
        ("order_item_id", "bigint"),
        ("return_ts", TS),
        ("reason", "text"),
        ("refund_amount", M),
        ("return_status", "text"),
        ("updated_at", TS),
    ],
    "fact_funnel_events": [
        ("event_id", "uuid"),
        ("session_id", "text"),
        ("customer_id", "bigint"),
        ("event_ts", TS),
        ("event_type", "text"),
        ("product_id", "bigint"),
        ("order_id", "bigint"),
        ("cart_value_usd", M),
        ("channel", "text"),
        ("updated_at", TS),
    ],
}
NULLABLE = {
    ("fact_shipments", "delivered_ts"),
    ("fact_returns", "order_item_id"),
    ("fact_funnel_events", "customer_id"),
    ("fact_funnel_events", "product_id"),
    ("fact_funnel_events", "order_id"),
    ("fact_funnel_events", "cart_value_usd"),
}
STAGING = {
    "dim_customer": "stg_customers",
    "dim_product": "stg_products",
    "fact_orders": "stg_orders",
    "fact_order_items": "stg_order_items",
    "fact_payments": "stg_payments",
    "fact_shipments": "stg_shipments",
    "fact_returns": "stg_returns",
    "fact_funnel_events": "stg_funnel_events",
}
KEYS = {
    "dim_customer": ["customer_id"],
    "dim_product": ["product_id"],
    "fact_orders": ["order_id"],
    "fact_order_items": ["order_id", "order_item_id"],
    "fact_payments": ["order_id", "payment_id"],
    "fact_shipments": ["order_id", "shipment_id"],
    "fact_returns": ["order_id", "return_id"],
    "fact_funnel_events": ["session_id", "event_id"],
}
PARTITION_COLUMN = {
    "fact_orders": ["order_ts"],
    "fact_order_items": ["order_ts"],
    "fact_payments": ["order_ts"],
    "fact_shipments": ["order_ts"],
    "fact_returns": ["order_ts"],
    "fact_funnel_events": ["event_ts"],
}


def _columns(conn, table):
    return fetch(
        conn,
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
                          FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0
                          AND NOT a.attisdropped ORDER BY a.attnum""",
        f"globalcart.{table}",
    )


@pytest.mark.parametrize("table", list(CONTRACT))
def test_fact_has_the_contract_columns_types_and_nullability(conn, table):
    got = {name: (typ, notnull) for name, typ, notnull in _columns(conn, table)}
    for name, typ in CONTRACT[table]:
        assert name in got, name
        assert got[name] == (typ, (table, name) not in NULLABLE), name


@pytest.mark.parametrize("table", list(CONTRACT))
def test_staging_has_the_business_columns_without_constraints(conn, table):
    staging = {name: (typ, notnull) for name, typ, notnull in _columns(conn, STAGING[table])}
    for name, typ in CONTRACT[table]:
        assert staging[name] == (typ, False), name
    extra = set(staging) - {name for name, _ in CONTRACT[table]}
    # bookkeeping columns all have defaults, so producers never name them
    for name in extra:
        assert scalar(
            conn,
            """SELECT a.atthasdef OR a.attidentity <> '' FROM pg_attribute a
                               WHERE a.attrelid = %s::regclass AND a.attname = %s""",
            f"globalcart.{STAGING[table]}",
            name,
        ), name
    assert (
        scalar(
            conn,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            f"globalcart.{STAGING[table]}",
        )
        == 0
    )


@pytest.mark.parametrize("table", list(KEYS))
def test_primary_keys_are_distribution_ready(conn, table):
    cols = fetch(
        conn,
        """SELECT a.attname FROM pg_index i
                          JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                          WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n""",
        f"globalcart.{table}",
    )
    # docs/contract.md §1: the contract's key, then the partition column of a table partitioned by time
    assert [c[0] for c in cols] == KEYS[table] + PARTITION_COLUMN.get(table, [])


@pytest.mark.parametrize("table", list(CONTRACT))
def test_audit_table_has_audit_columns_and_every_column_of_its_table(conn, table):
    audit = [name for name, _, _ in _columns(conn, f"audit_{table}")]
    assert audit[:3] == ["audit_id", "audited_at", "audit_run_id"]
    columns = [name for name, _, _ in _columns(conn, table)]
    # every column of its table, in the table's order, and who made the change, and how (docs/contract.md §7)
    assert [name for name in audit if name in columns] == columns
    assert set(audit) - set(columns) == {"audit_id", "audited_at", "audit_run_id", "audited_by", "audit_action"}


def test_currencies_are_seeded(conn):
    rates = dict(fetch(conn, "SELECT currency_code, usd_rate FROM globalcart.dim_currency"))
    assert {"USD", "EUR", "GBP", "INR", "JPY", "BRL", "AUD", "CAD", "SGD", "AED"} <= set(rates)
    assert rates["USD"] == 1
    assert all(rate > 0 for rate in rates.values())


def test_bookkeeping_tables_exist_with_their_contract_columns(conn):
    expected = {
        "etl_watermarks": {"source_name", "watermark_ts"},
        "etl_runs": {"run_id", "started_at", "finished_at", "status", "stats"},
        "etl_rejects": {"reject_id", "run_id", "source_name", "reason", "record", "rejected_at"},
        "etl_settings": {"name", "value"},
        "kpi_snapshots": {"snapshot_id", "label", "taken_at", "kpi_name", "kpi_value"},
        "dim_date": {"date_key", "full_date"},
    }
    for table, columns in expected.items():
        assert columns <= {name for name, _, _ in _columns(conn, table)}, table
    assert scalar(conn, "SELECT value FROM globalcart.etl_settings WHERE name = 'orphan_timeout'") == "24 hours"
    assert scalar(conn, "SELECT count(*) FROM globalcart.dim_date WHERE full_date = current_date") == 1


def test_lookups_of_the_refresh_have_indexes(conn):
    """Every key the refresh looks a row up by has an index whose first column is that key."""
    for table, column in [
        ("fact_order_items", "order_item_id"),
        ("fact_payments", "payment_id"),
        ("fact_shipments", "shipment_id"),
        ("fact_returns", "return_id"),
        ("fact_funnel_events", "event_id"),
        ("fact_returns", "order_id"),
        ("fact_orders", "order_id"),
    ]:
        assert (
            scalar(
                conn,
                """SELECT count(*) FROM pg_index i JOIN pg_attribute a
                               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                               WHERE i.indrelid = %s::regclass AND a.attname = %s""",
                f"globalcart.{table}",
                column,
            )
            >= 1
        ), (table, column)


def test_every_function_pins_search_path_or_says_why_not(conn):
    unpinned = fetch(
        conn,
        """SELECT p.proname FROM pg_proc p
                              WHERE p.pronamespace = 'globalcart'::regnamespace AND p.proconfig IS NULL""",
    )
    # inlined per-row helpers (SQL-standard bodies, bound at creation; the KPI rules, inlined into every
    # query that adds orders or sessions up, and naming no table), generated audit triggers, the
    # generated as-of functions (a SET clause would stop the planner inlining them: a one-order read
    # would read the whole table), and the procedures that COMMIT (a SET clause forbids it); all of
    # them schema-qualify every name instead
    allowed = {"order_status_rank", "order_status_transition_allowed", "current_run_id", "refresh_for", "drain_staging",
               "kpi_order_contribution", "kpi_session_contribution", "kpi_order_ratios"}
    history = {f"{t}_as_of" for (t,) in fetch(conn, "SELECT table_name FROM globalcart.history_tables()")}
    assert {name for (name,) in unpinned} - allowed == {
        name for (name,) in unpinned if name.startswith("audit_") and name.endswith("_before_update")
    } | history


def test_every_table_and_view_has_a_comment(conn):
    missing = fetch(
        conn,
        """SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'globalcart'::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm') AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1""",
    )
    assert missing == []


def test_every_money_column_says_its_currency(conn):
    money = fetch(
        conn,
        """SELECT c.relname || '.' || a.attname, coalesce(col_description(c.oid, a.attnum), '')
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
             AND NOT a.attisdropped AND format_type(a.atttypid, a.atttypmod) = 'numeric(14,2)'
             AND c.relname NOT LIKE 'audit\\_%%' ORDER BY 1""",
    )
    assert len(money) >= 22  # the facts', dimensions' and their staging tables'
    for column, comment in money:
        assert "USD" in comment or "currency" in comment, column
