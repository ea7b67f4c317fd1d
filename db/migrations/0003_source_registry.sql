-- 0003_source_registry: the one list of sources, KPI order kept with each snapshot, and the
-- comments that were missing (every table says what it is; money columns say their currency).

-- The sources of docs/contract.md §1, in the order a refresh applies them. Everything that
-- repeats per source — the work tables, the staging counts, the driver's COPY targets and
-- benchmark tables, the tests — reads this table; what differs per source (its business
-- rules) stays explicit in globalcart.apply_<source>(), dispatched by globalcart.run_source_step().
CREATE TABLE globalcart.etl_sources (
  source_name     text PRIMARY KEY,
  apply_order     smallint NOT NULL UNIQUE CHECK (apply_order > 0),
  staging_table   text NOT NULL UNIQUE CHECK (staging_table = 'stg_' || source_name),
  fact_table      text NOT NULL UNIQUE,
  key_column      text NOT NULL,
  primary_key     text[] NOT NULL CHECK (key_column = ANY (primary_key)),
  waits_for_order boolean NOT NULL
);
COMMENT ON TABLE globalcart.etl_sources IS
  'The sources of the refresh (CONTRACT section 1), in apply_order: staging table, fact or dimension, the key of newest-wins, '
  'the primary key (distribution column first), and whether rows wait for their order (order-grain children).';
COMMENT ON COLUMN globalcart.etl_sources.key_column IS 'The column that identifies a record for newest-wins and deduplication.';
COMMENT ON COLUMN globalcart.etl_sources.primary_key IS
  'Primary key of the fact or dimension, distribution column first: (order_id, <key>) for order-grain facts.';
COMMENT ON COLUMN globalcart.etl_sources.waits_for_order IS
  'true for items, payments, shipments and returns: deferred in staging until their order is applied (orphan after orphan_timeout).';
INSERT INTO globalcart.etl_sources
  (source_name, apply_order, staging_table, fact_table, key_column, primary_key, waits_for_order) VALUES
  ('customers',     1, 'stg_customers',     'dim_customer',       'customer_id',   '{customer_id}',              false),
  ('products',      2, 'stg_products',      'dim_product',        'product_id',    '{product_id}',               false),
  ('orders',        3, 'stg_orders',        'fact_orders',        'order_id',      '{order_id}',                 false),
  ('order_items',   4, 'stg_order_items',   'fact_order_items',   'order_item_id', '{order_id,order_item_id}',   true),
  ('payments',      5, 'stg_payments',      'fact_payments',      'payment_id',    '{order_id,payment_id}',      true),
  ('shipments',     6, 'stg_shipments',     'fact_shipments',     'shipment_id',   '{order_id,shipment_id}',     true),
  ('returns',       7, 'stg_returns',       'fact_returns',       'return_id',     '{order_id,return_id}',       true),
  ('funnel_events', 8, 'stg_funnel_events', 'fact_funnel_events', 'event_id',      '{session_id,event_id}',      false);

-- compare_kpis and the commands sort a snapshot by this, instead of recomputing every KPI.
ALTER TABLE globalcart.kpi_snapshots ADD COLUMN kpi_order integer;
UPDATE globalcart.kpi_snapshots
   SET kpi_order = array_position(ARRAY['orders', 'gmv_usd', 'net_revenue_usd', 'aov_usd', 'units', 'return_rate',
                                        'refunds_usd', 'sla_breach_rate', 'on_time_delivery_rate',
                                        'payment_failure_rate', 'conversion_rate', 'cart_abandonment_rate',
                                        'revenue_lost_due_to_failures', 'revenue_lost_due_to_abandonment'], kpi_name);
COMMENT ON COLUMN globalcart.kpi_snapshots.kpi_order IS 'Position of the KPI in CONTRACT section 3 (1-14): the order in which it is shown.';

COMMENT ON TABLE globalcart.schema_migrations IS
  'The migrations of db/migrations applied to this database, with the checksum of each file (migrate refuses an edited one).';

-- Money columns: every amount is in a currency, and says which.
COMMENT ON COLUMN globalcart.dim_product.list_price_usd IS 'List price in USD.';
COMMENT ON COLUMN globalcart.fact_orders.gross_amount IS 'Order value before discount, in the order''s currency (column currency).';
COMMENT ON COLUMN globalcart.fact_orders.discount_amount IS 'Discount, in the order''s currency (column currency).';
COMMENT ON COLUMN globalcart.fact_orders.shipping_amount IS 'Shipping charged, in the order''s currency (column currency).';
COMMENT ON COLUMN globalcart.fact_orders.net_amount IS
  'gross - discount + shipping, in the order''s currency (column currency); KPIs convert with dim_currency.usd_rate.';
COMMENT ON COLUMN globalcart.fact_order_items.unit_price IS 'Price of one unit, in the order''s currency (fact_orders.currency).';
COMMENT ON COLUMN globalcart.fact_order_items.discount_amount IS 'Discount on the line, in the order''s currency (fact_orders.currency).';
COMMENT ON COLUMN globalcart.fact_order_items.line_amount IS
  'quantity * unit_price - discount_amount, in the order''s currency (fact_orders.currency).';
COMMENT ON COLUMN globalcart.fact_payments.amount IS 'Amount of the attempt, in the payment''s currency (column currency).';
COMMENT ON COLUMN globalcart.fact_returns.refund_amount IS 'Amount refunded, in the order''s currency (fact_orders.currency).';
COMMENT ON COLUMN globalcart.fact_funnel_events.cart_value_usd IS 'Value of the cart at the event, in USD.';

-- Staging tables say what they queue, and their columns carry the comments of the fact's
-- (generated from the registry and the catalog).
DO $$
DECLARE
  v_source globalcart.etl_sources;
  v_column record;
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources ORDER BY apply_order LOOP
    EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', v_source.staging_table,
                   format('Staging queue of source %s for globalcart.%s: producers INSERT/COPY its business columns '
                          'only; run_incremental_refresh() claims and empties it.', v_source.source_name,
                          v_source.fact_table));
    FOR v_column IN
      SELECT a.attname, pg_catalog.col_description(a.attrelid, a.attnum) AS description
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_attribute s ON s.attrelid = format('globalcart.%I', v_source.staging_table)::regclass
                                      AND s.attname = a.attname AND NOT s.attisdropped
       WHERE a.attrelid = format('globalcart.%I', v_source.fact_table)::regclass AND a.attnum > 0
         AND NOT a.attisdropped AND pg_catalog.col_description(a.attrelid, a.attnum) IS NOT NULL
    LOOP
      EXECUTE format('COMMENT ON COLUMN globalcart.%I.%I IS %L', v_source.staging_table, v_column.attname,
                     v_column.description);
    END LOOP;
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.stg_id IS %L', v_source.staging_table,
                   'Bookkeeping: the order rows were staged in (a refresh claims the lowest first). Never named by producers.');
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.ingested_at IS %L', v_source.staging_table,
                   'Bookkeeping: when the row was first staged; kept when a refresh defers a row, so the orphan timeout '
                   'counts from here. Never named by producers.');
  END LOOP;
END;
$$;
