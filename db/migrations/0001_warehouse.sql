-- 0001_warehouse: the star schema, the staging queue, audit tables and ETL bookkeeping.
-- Public interface: docs/contract.md §1-§2. Forward-only: change the schema
-- in a new numbered file, never by editing this one once it has been applied.

CREATE SCHEMA IF NOT EXISTS globalcart;
COMMENT ON SCHEMA globalcart IS
  'GlobalCart 360: e-commerce star schema kept current by globalcart.run_incremental_refresh()';

-- ---------------------------------------------------------------------------------------
-- Reference dimensions
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.dim_currency (
  currency_code char(3) PRIMARY KEY,
  currency_name text NOT NULL,
  usd_rate      numeric NOT NULL CHECK (usd_rate > 0),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE globalcart.dim_currency IS
  'Currencies a fact may use; usd_rate converts an amount to USD (amount * usd_rate).';

INSERT INTO globalcart.dim_currency (currency_code, currency_name, usd_rate) VALUES
  ('USD', 'US dollar',          1.000000),
  ('EUR', 'Euro',               1.080000),
  ('GBP', 'Pound sterling',     1.270000),
  ('INR', 'Indian rupee',       0.012000),
  ('JPY', 'Japanese yen',       0.006700),
  ('BRL', 'Brazilian real',     0.200000),
  ('AUD', 'Australian dollar',  0.660000),
  ('CAD', 'Canadian dollar',    0.740000),
  ('SGD', 'Singapore dollar',   0.740000),
  ('AED', 'UAE dirham',         0.272300);

CREATE TABLE globalcart.dim_date (
  date_key     integer PRIMARY KEY,           -- YYYYMMDD
  full_date    date NOT NULL UNIQUE,
  year         smallint NOT NULL,
  quarter      smallint NOT NULL,
  month        smallint NOT NULL,
  month_name   text NOT NULL,
  day_of_month smallint NOT NULL,
  iso_week     smallint NOT NULL,
  day_of_week  smallint NOT NULL,             -- ISO: Monday 1 .. Sunday 7
  day_name     text NOT NULL,
  is_weekend   boolean NOT NULL
);
COMMENT ON TABLE globalcart.dim_date IS
  'Calendar 2015-2040 for BI joins: date_key = to_char(ts::date, ''YYYYMMDD'')::int.';

INSERT INTO globalcart.dim_date
SELECT to_char(d, 'YYYYMMDD')::int, d::date,
       extract(year FROM d), extract(quarter FROM d), extract(month FROM d), trim(to_char(d, 'Month')),
       extract(day FROM d), extract(week FROM d), extract(isodow FROM d), trim(to_char(d, 'Day')),
       extract(isodow FROM d) IN (6, 7)
FROM generate_series(date '2015-01-01', date '2040-12-31', interval '1 day') AS d;

-- ---------------------------------------------------------------------------------------
-- Dimensions (small reference tables, written before the facts)
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.dim_customer (
  customer_id  bigint PRIMARY KEY,
  full_name    text NOT NULL,
  email        text NOT NULL,
  country_code char(2) NOT NULL,
  signup_ts    timestamptz NOT NULL,
  segment      text NOT NULL,
  updated_at   timestamptz NOT NULL,
  is_inferred  boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE globalcart.dim_customer IS 'Customers, current state (SCD type 1; old versions in audit_dim_customer).';
COMMENT ON COLUMN globalcart.dim_customer.is_inferred IS
  'true for a placeholder created because a fact named an unknown customer; the first real row replaces it.';

CREATE TABLE globalcart.dim_product (
  product_id     bigint PRIMARY KEY,
  sku            text NOT NULL,
  product_name   text NOT NULL,
  category       text NOT NULL,
  list_price_usd numeric(14,2) NOT NULL CHECK (list_price_usd >= 0),
  updated_at     timestamptz NOT NULL,
  is_inferred    boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE globalcart.dim_product IS 'Product catalogue, current state (old versions in audit_dim_product).';
COMMENT ON COLUMN globalcart.dim_product.is_inferred IS
  'true for a placeholder created because a fact named an unknown product; the first real row replaces it.';

-- ---------------------------------------------------------------------------------------
-- Facts (current state). Order-grain facts are keyed (order_id, <id>) so that they can be
-- distributed and colocated by order_id; the lone <id> index serves lookups by key.
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.fact_orders (
  order_id        bigint PRIMARY KEY,
  customer_id     bigint NOT NULL,
  order_ts        timestamptz NOT NULL,
  order_status    text NOT NULL CHECK (order_status IN
                    ('PLACED', 'PAID', 'SHIPPED', 'DELIVERED', 'COMPLETED', 'RETURNED', 'CANCELLED')),
  channel         text NOT NULL,
  country_code    char(2) NOT NULL,
  currency        char(3) NOT NULL,
  gross_amount    numeric(14,2) NOT NULL CHECK (gross_amount >= 0),
  discount_amount numeric(14,2) NOT NULL CHECK (discount_amount >= 0),
  shipping_amount numeric(14,2) NOT NULL CHECK (shipping_amount >= 0),
  net_amount      numeric(14,2) NOT NULL CHECK (net_amount >= 0),
  updated_at      timestamptz NOT NULL
);
CREATE INDEX fact_orders_customer_idx ON globalcart.fact_orders (customer_id);
CREATE INDEX fact_orders_order_ts_idx ON globalcart.fact_orders (order_ts);
COMMENT ON TABLE globalcart.fact_orders IS
  'One row per order, current state. Status never moves backwards (see globalcart.order_status_transition_allowed).';

CREATE TABLE globalcart.fact_order_items (
  order_item_id   bigint NOT NULL,
  order_id        bigint NOT NULL,
  product_id      bigint NOT NULL,
  quantity        integer NOT NULL CHECK (quantity > 0),
  unit_price      numeric(14,2) NOT NULL CHECK (unit_price >= 0),
  discount_amount numeric(14,2) NOT NULL CHECK (discount_amount >= 0),
  line_amount     numeric(14,2) NOT NULL CHECK (line_amount >= 0),
  updated_at      timestamptz NOT NULL,
  PRIMARY KEY (order_id, order_item_id)
);
CREATE INDEX fact_order_items_key_idx ON globalcart.fact_order_items (order_item_id);
CREATE INDEX fact_order_items_product_idx ON globalcart.fact_order_items (product_id);
COMMENT ON TABLE globalcart.fact_order_items IS 'Order lines, current state, colocated with their order by order_id.';

CREATE TABLE globalcart.fact_payments (
  payment_id     bigint NOT NULL,
  order_id       bigint NOT NULL,
  payment_ts     timestamptz NOT NULL,
  payment_method text NOT NULL,
  payment_status text NOT NULL CHECK (payment_status IN ('AUTHORIZED', 'CAPTURED', 'FAILED', 'REFUNDED')),
  amount         numeric(14,2) NOT NULL CHECK (amount >= 0),
  currency       char(3) NOT NULL,
  updated_at     timestamptz NOT NULL,
  PRIMARY KEY (order_id, payment_id)
);
CREATE INDEX fact_payments_key_idx ON globalcart.fact_payments (payment_id);
COMMENT ON TABLE globalcart.fact_payments IS 'Payment attempts, current state.';

CREATE TABLE globalcart.fact_shipments (
  shipment_id       bigint NOT NULL,
  order_id          bigint NOT NULL,
  carrier           text NOT NULL,
  shipped_ts        timestamptz NOT NULL,
  promised_ts       timestamptz NOT NULL,
  delivered_ts      timestamptz,
  shipment_status   text NOT NULL CHECK (shipment_status IN ('CREATED', 'IN_TRANSIT', 'DELIVERED', 'DELAYED')),
  sla_breached_flag boolean NOT NULL
                    GENERATED ALWAYS AS (coalesce(delivered_ts > promised_ts, false)) STORED,
  updated_at        timestamptz NOT NULL,
  PRIMARY KEY (order_id, shipment_id)
);
CREATE INDEX fact_shipments_key_idx ON globalcart.fact_shipments (shipment_id);
COMMENT ON TABLE globalcart.fact_shipments IS 'Shipments, current state.';
COMMENT ON COLUMN globalcart.fact_shipments.sla_breached_flag IS
  'Computed by the warehouse: true exactly when delivered_ts > promised_ts (a staged value is ignored).';

CREATE TABLE globalcart.fact_returns (
  return_id     bigint NOT NULL,
  order_id      bigint NOT NULL,
  order_item_id bigint,
  return_ts     timestamptz NOT NULL,
  reason        text NOT NULL,
  refund_amount numeric(14,2) NOT NULL CHECK (refund_amount >= 0),
  return_status text NOT NULL CHECK (return_status IN ('REQUESTED', 'APPROVED', 'REFUNDED', 'REJECTED')),
  updated_at    timestamptz NOT NULL,
  PRIMARY KEY (order_id, return_id)
);
CREATE INDEX fact_returns_key_idx ON globalcart.fact_returns (return_id);
COMMENT ON TABLE globalcart.fact_returns IS
  'Returns and refunds, often late-arriving; a return not REJECTED turns a DELIVERED/COMPLETED order RETURNED.';

CREATE TABLE globalcart.fact_funnel_events (
  event_id       uuid NOT NULL,
  session_id     text NOT NULL,
  customer_id    bigint,
  event_ts       timestamptz NOT NULL,
  event_type     text NOT NULL CHECK (event_type IN
                   ('PAGE_VIEW', 'PRODUCT_VIEW', 'ADD_TO_CART', 'CHECKOUT_START',
                    'PAYMENT_ATTEMPT', 'PAYMENT_FAILED', 'PURCHASE')),
  product_id     bigint,
  order_id       bigint,
  cart_value_usd numeric(14,2) CHECK (cart_value_usd >= 0),
  channel        text NOT NULL,
  updated_at     timestamptz NOT NULL,
  PRIMARY KEY (session_id, event_id)
);
CREATE INDEX fact_funnel_events_event_idx ON globalcart.fact_funnel_events (event_id);
CREATE INDEX fact_funnel_events_ts_idx ON globalcart.fact_funnel_events (event_ts);
COMMENT ON TABLE globalcart.fact_funnel_events IS
  'Session journey events, append-only: a replayed event_id is ignored (counted as duplicate).';

-- Facts are updated in place by the refresh: leave room on each page so that an update
-- which changes no indexed column stays on its page (a HOT update, no index maintenance).
ALTER TABLE globalcart.fact_orders SET (fillfactor = 85);
ALTER TABLE globalcart.fact_order_items SET (fillfactor = 85);
ALTER TABLE globalcart.fact_payments SET (fillfactor = 85);
ALTER TABLE globalcart.fact_shipments SET (fillfactor = 85);
ALTER TABLE globalcart.fact_returns SET (fillfactor = 85);

-- ---------------------------------------------------------------------------------------
-- Staging: the queue producers write. Business columns of the fact with its types but no
-- NOT NULL or CHECK (a bad row lands and is quarantined by the refresh), plus bookkeeping
-- columns with defaults that producers never name.
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.stg_customers (
  customer_id bigint, full_name text, email text, country_code char(2), signup_ts timestamptz,
  segment text, updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_products (
  product_id bigint, sku text, product_name text, category text, list_price_usd numeric(14,2),
  updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_orders (
  order_id bigint, customer_id bigint, order_ts timestamptz, order_status text, channel text,
  country_code char(2), currency char(3), gross_amount numeric(14,2), discount_amount numeric(14,2),
  shipping_amount numeric(14,2), net_amount numeric(14,2), updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_order_items (
  order_item_id bigint, order_id bigint, product_id bigint, quantity integer, unit_price numeric(14,2),
  discount_amount numeric(14,2), line_amount numeric(14,2), updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_payments (
  payment_id bigint, order_id bigint, payment_ts timestamptz, payment_method text, payment_status text,
  amount numeric(14,2), currency char(3), updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_shipments (
  shipment_id bigint, order_id bigint, carrier text, shipped_ts timestamptz, promised_ts timestamptz,
  delivered_ts timestamptz, shipment_status text, sla_breached_flag boolean, updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_returns (
  return_id bigint, order_id bigint, order_item_id bigint, return_ts timestamptz, reason text,
  refund_amount numeric(14,2), return_status text, updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE globalcart.stg_funnel_events (
  event_id uuid, session_id text, customer_id bigint, event_ts timestamptz, event_type text,
  product_id bigint, order_id bigint, cart_value_usd numeric(14,2), channel text, updated_at timestamptz,
  stg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ingested_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE globalcart.stg_orders IS
  'Staging queue for fact_orders: producers INSERT/COPY business columns only; run_incremental_refresh() claims and empties it.';
COMMENT ON COLUMN globalcart.stg_orders.ingested_at IS
  'When the row was first staged; kept when a refresh defers a row, so the orphan timeout counts from here.';

-- ---------------------------------------------------------------------------------------
-- Audit: old versions copied by BEFORE UPDATE triggers (db/triggers/audit.sql).
-- Each carries the distribution column of its table.
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.audit_dim_currency (
  audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.dim_currency
);
CREATE TABLE globalcart.audit_dim_date (
  audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.dim_date
);
CREATE TABLE globalcart.audit_dim_customer (
  audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.dim_customer
);
CREATE TABLE globalcart.audit_dim_product (
  audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.dim_product
);
CREATE TABLE globalcart.audit_fact_orders (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_orders,
  PRIMARY KEY (order_id, audit_id)
);
CREATE TABLE globalcart.audit_fact_order_items (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_order_items,
  PRIMARY KEY (order_id, audit_id)
);
CREATE TABLE globalcart.audit_fact_payments (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_payments,
  PRIMARY KEY (order_id, audit_id)
);
CREATE TABLE globalcart.audit_fact_shipments (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_shipments,
  PRIMARY KEY (order_id, audit_id)
);
CREATE TABLE globalcart.audit_fact_returns (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_returns,
  PRIMARY KEY (order_id, audit_id)
);
CREATE TABLE globalcart.audit_fact_funnel_events (
  audit_id bigint GENERATED ALWAYS AS IDENTITY,
  audited_at timestamptz NOT NULL DEFAULT now(),
  audit_run_id bigint,
  LIKE globalcart.fact_funnel_events,
  PRIMARY KEY (session_id, audit_id)
);
COMMENT ON TABLE globalcart.audit_fact_orders IS
  'Old versions of fact_orders rows, copied before each update; audit_run_id is the etl_runs row (NULL outside a refresh).';

-- ---------------------------------------------------------------------------------------
-- ETL bookkeeping
-- ---------------------------------------------------------------------------------------

CREATE TABLE globalcart.etl_runs (
  run_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  status       text NOT NULL CHECK (status IN ('running', 'ok')),
  stats        jsonb,
  rows_claimed bigint NOT NULL DEFAULT 0,
  rows_applied bigint NOT NULL DEFAULT 0,
  rows_rejected bigint NOT NULL DEFAULT 0,
  rows_deferred bigint NOT NULL DEFAULT 0,
  backend_pid  integer NOT NULL DEFAULT pg_backend_pid(),
  application_name text DEFAULT current_setting('application_name', true)
);
COMMENT ON TABLE globalcart.etl_runs IS
  'One row per refresh that ran (not for skipped calls); stats is the jsonb the call returned.';

CREATE TABLE globalcart.etl_watermarks (
  source_name  text PRIMARY KEY,
  watermark_ts timestamptz,
  last_run_id  bigint,
  updated_at   timestamptz
);
COMMENT ON TABLE globalcart.etl_watermarks IS
  'Per source, the greatest updated_at applied so far (NULL before the first). Producers extract from watermark_ts minus an overlap.';
INSERT INTO globalcart.etl_watermarks (source_name) VALUES
  ('customers'), ('products'), ('orders'), ('order_items'),
  ('payments'), ('shipments'), ('returns'), ('funnel_events');

CREATE TABLE globalcart.etl_rejects (
  reject_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id      bigint NOT NULL,
  source_name text NOT NULL,
  reason      text NOT NULL,
  record      jsonb NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX etl_rejects_run_idx ON globalcart.etl_rejects (run_id);
COMMENT ON TABLE globalcart.etl_rejects IS
  'Quarantine: one row per rejected staged row, with the reason and the staged row as jsonb.';

CREATE TABLE globalcart.etl_settings (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  description text,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE globalcart.etl_settings IS 'Tunables of the refresh, read at every call.';
INSERT INTO globalcart.etl_settings (name, value, description) VALUES
  ('orphan_timeout', '24 hours',
   'How long an item, payment, shipment or return waits for its order (from when it was first staged) before it is rejected as orphan. An interval.');

CREATE TABLE globalcart.kpi_snapshots (
  snapshot_id bigint NOT NULL,
  label       text NOT NULL,
  taken_at    timestamptz NOT NULL DEFAULT now(),
  kpi_name    text NOT NULL,
  kpi_value   numeric,
  PRIMARY KEY (snapshot_id, kpi_name)
);
CREATE SEQUENCE globalcart.kpi_snapshot_id_seq OWNED BY globalcart.kpi_snapshots.snapshot_id;
CREATE INDEX kpi_snapshots_label_idx ON globalcart.kpi_snapshots (label, taken_at DESC);
COMMENT ON TABLE globalcart.kpi_snapshots IS
  'KPI values stored by snapshot_kpis(label), one row per KPI; compare_kpis() reads the latest of each label.';
