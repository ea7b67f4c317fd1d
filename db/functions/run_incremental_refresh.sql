-- globalcart.run_incremental_refresh(): applies everything staged in globalcart.stg_* to
-- the dimensions and facts, in one transaction (CONTRACT section 2).
--
--   1. pg_try_advisory_xact_lock: if another refresh holds it, return "skipped" at once.
--   2. Open the run (etl_runs) and publish its id to the audit triggers.
--   3. Claim: one statement DELETEs every staging table RETURNING into the temporary
--      claim tables, so one snapshot decides the batch, and a row committed after it
--      stays in staging for the next call: nothing is read twice or lost.
--   4. Apply, dimensions before facts and orders before their children:
--      customers, products, orders, order_items, payments, shipments, returns, funnel.
--   5. Derived state: returns turn delivered orders RETURNED.
--   6. Close the run with its summary, which is also returned:
--      {"run_id", "status", "started_at", "finished_at", "duration_ms", "<source>": {counts}…,
--       "sources": {"<source>": {counts}…} (the same objects, grouped), "totals": {counts},
--       "derived": {"orders_returned"}}
CREATE OR REPLACE FUNCTION globalcart.run_incremental_refresh()
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog
  -- Planner settings for the duration of the refresh (and the steps it calls): the warehouse's
  -- hot pages are cached, so an index probe costs about a sequential page read, and batches
  -- of a few hundred thousand rows are sorted in memory. One refresh runs at a time.
  SET random_page_cost = 1.1
  SET work_mem = '64MB'
AS $$
DECLARE
  v_lock_key constant bigint := 360360::bigint;  -- advisory lock key: one refresh at a time
  v_sources constant text[] := ARRAY['customers', 'products', 'orders', 'order_items',
                                     'payments', 'shipments', 'returns', 'funnel_events'];
  v_started timestamptz := clock_timestamp();
  v_now timestamptz := now();
  v_run_id bigint;
  v_stats jsonb := '{}'::jsonb;
  v_totals jsonb;
  v_returned bigint := 0::bigint;
  v_finished timestamptz;
BEGIN
  IF NOT pg_try_advisory_xact_lock(v_lock_key) THEN
    RAISE NOTICE 'globalcart.run_incremental_refresh: another refresh is running; skipped';
    SELECT jsonb_object_agg(s, globalcart.source_stats()) INTO v_stats FROM unnest(v_sources) AS s;
    RETURN jsonb_build_object('run_id', NULL, 'status', 'skipped', 'reason', 'another refresh is running',
                              'sources', v_stats)
           || v_stats;
  END IF;

  INSERT INTO globalcart.etl_runs (started_at, status) VALUES (v_started, 'running')
  RETURNING run_id INTO v_run_id;
  PERFORM set_config('globalcart.run_id', v_run_id::text, true);

  IF EXISTS (SELECT 1 FROM globalcart.stg_customers) OR EXISTS (SELECT 1 FROM globalcart.stg_products)
     OR EXISTS (SELECT 1 FROM globalcart.stg_orders) OR EXISTS (SELECT 1 FROM globalcart.stg_order_items)
     OR EXISTS (SELECT 1 FROM globalcart.stg_payments) OR EXISTS (SELECT 1 FROM globalcart.stg_shipments)
     OR EXISTS (SELECT 1 FROM globalcart.stg_returns) OR EXISTS (SELECT 1 FROM globalcart.stg_funnel_events)
  THEN
    PERFORM globalcart.create_work_tables();

    WITH d_customers AS (DELETE FROM globalcart.stg_customers RETURNING *),
         c_customers AS (INSERT INTO pg_temp.gc_claim_customers SELECT * FROM d_customers),
         d_products AS (DELETE FROM globalcart.stg_products RETURNING *),
         c_products AS (INSERT INTO pg_temp.gc_claim_products SELECT * FROM d_products),
         d_orders AS (DELETE FROM globalcart.stg_orders RETURNING *),
         c_orders AS (INSERT INTO pg_temp.gc_claim_orders SELECT * FROM d_orders),
         d_order_items AS (DELETE FROM globalcart.stg_order_items RETURNING *),
         c_order_items AS (INSERT INTO pg_temp.gc_claim_order_items SELECT * FROM d_order_items),
         d_payments AS (DELETE FROM globalcart.stg_payments RETURNING *),
         c_payments AS (INSERT INTO pg_temp.gc_claim_payments SELECT * FROM d_payments),
         d_shipments AS (DELETE FROM globalcart.stg_shipments RETURNING *),
         c_shipments AS (INSERT INTO pg_temp.gc_claim_shipments SELECT * FROM d_shipments),
         d_returns AS (DELETE FROM globalcart.stg_returns RETURNING *),
         c_returns AS (INSERT INTO pg_temp.gc_claim_returns SELECT * FROM d_returns),
         d_funnel_events AS (DELETE FROM globalcart.stg_funnel_events RETURNING *)
    INSERT INTO pg_temp.gc_claim_funnel_events SELECT * FROM d_funnel_events;

    v_stats := jsonb_build_object(
      'customers', globalcart.apply_customers(v_run_id),
      'products', globalcart.apply_products(v_run_id));
    v_stats := v_stats || jsonb_build_object('orders', globalcart.apply_orders(v_run_id, v_now));
    v_stats := v_stats || jsonb_build_object('order_items', globalcart.apply_order_items(v_run_id, v_now));
    v_stats := v_stats || jsonb_build_object('payments', globalcart.apply_payments(v_run_id, v_now));
    v_stats := v_stats || jsonb_build_object('shipments', globalcart.apply_shipments(v_run_id, v_now));
    v_stats := v_stats || jsonb_build_object('returns', globalcart.apply_returns(v_run_id, v_now));
    v_stats := v_stats || jsonb_build_object('funnel_events', globalcart.apply_funnel_events(v_run_id, v_now));
    v_returned := globalcart.derive_returned_orders();
  ELSE
    SELECT jsonb_object_agg(s, globalcart.source_stats()) INTO v_stats FROM unnest(v_sources) AS s;
  END IF;

  SELECT jsonb_object_agg(k.key, k.total) INTO v_totals
  FROM (SELECT c.key, sum(c.value::bigint) AS total
          FROM unnest(v_sources) AS s, jsonb_each_text(v_stats -> s) AS c
         GROUP BY c.key) AS k;

  v_finished := clock_timestamp();
  v_stats := jsonb_build_object(
               'run_id', v_run_id, 'status', 'ok', 'started_at', v_started, 'finished_at', v_finished,
               'duration_ms', round(extract(epoch FROM v_finished - v_started) * 1000, 1))
             || v_stats
             || jsonb_build_object('sources', v_stats, 'totals', v_totals,
                                   'derived', jsonb_build_object('orders_returned', v_returned));

  UPDATE globalcart.etl_runs
     SET finished_at = v_finished, status = 'ok', stats = v_stats,
         rows_claimed = (v_totals ->> 'claimed')::bigint,
         rows_applied = (v_totals ->> 'inserted')::bigint + (v_totals ->> 'updated')::bigint,
         rows_rejected = (v_totals ->> 'rejected')::bigint,
         rows_deferred = (v_totals ->> 'deferred')::bigint
   WHERE run_id = v_run_id;
  RETURN v_stats;
END;
$$;
COMMENT ON FUNCTION globalcart.run_incremental_refresh() IS
  'Applies everything staged in globalcart.stg_* in one transaction (lossless claim, dedup, newest-wins upsert, audit, quarantine, deferral of early children) and returns a jsonb summary; returns status skipped when another refresh is running.';
