-- globalcart.run_source_step(source, run_id, now, latest_valid, orphan_cutoff): runs the refresh
-- step of one source, globalcart.apply_<source>(), on what pg_temp.gc_claim_<source> holds,
-- and returns its counts. One static call per source (no dynamic SQL), so that both the
-- fast path and the isolating path (globalcart.apply_or_isolate) use the same steps.
--   now           the refresh's transaction time (inferred members are stamped with it)
--   latest_valid  now + etl_settings 'max_clock_skew': a later updated_at is rejected
--   orphan_cutoff now - etl_settings 'orphan_timeout': a child first staged at or before it
--                 whose order is still missing is rejected as orphan
CREATE OR REPLACE FUNCTION globalcart.run_source_step(
    p_source text, p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_stats jsonb;
BEGIN
  v_stats := CASE p_source
    WHEN 'customers' THEN globalcart.apply_customers(p_run_id, p_latest_valid)
    WHEN 'products' THEN globalcart.apply_products(p_run_id, p_latest_valid)
    WHEN 'orders' THEN globalcart.apply_orders(p_run_id, p_now, p_latest_valid)
    WHEN 'order_items' THEN globalcart.apply_order_items(p_run_id, p_now, p_latest_valid, p_orphan_cutoff)
    WHEN 'payments' THEN globalcart.apply_payments(p_run_id, p_latest_valid, p_orphan_cutoff)
    WHEN 'shipments' THEN globalcart.apply_shipments(p_run_id, p_latest_valid, p_orphan_cutoff)
    WHEN 'returns' THEN globalcart.apply_returns(p_run_id, p_latest_valid, p_orphan_cutoff)
    WHEN 'funnel_events' THEN globalcart.apply_funnel_events(p_run_id, p_now, p_latest_valid)
  END;
  IF v_stats IS NULL THEN
    RAISE EXCEPTION 'run_source_step: unknown source %', quote_literal(p_source) USING ERRCODE = 'GC006';
  END IF;
  RETURN v_stats;
END;
$$;
COMMENT ON FUNCTION globalcart.run_source_step(text, bigint, timestamptz, timestamptz, timestamptz) IS
  'Runs globalcart.apply_<source>() on the claimed rows of one source; returns its counts.';
