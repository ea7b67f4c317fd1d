-- globalcart.apply_funnel_events(run_id, now, latest_valid): appends the claimed funnel events
-- (pg_temp.gc_claim_funnel_events) to fact_funnel_events. The stream is append-only: an
-- event_id seen before (stored, or earlier in the batch) is counted as duplicate and
-- changes nothing. Steps, each one statement over the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      unknown event_type, negative cart_value_usd) -> etl_rejects; keep one row per
--      event_id (the newest staged) that is not stored yet (in any month: the event_id index of
--      each partition; a writer outside the refresh is waited for first, see below);
--   2. inferred dim_customer / dim_product members for unknown ids;
--   3. the monthly partitions of the batch's event_ts; INSERT … ON CONFLICT DO NOTHING;
--   4. globalcart.finish_source(): advance the 'funnel_events' watermark, count every claimed row once.
CREATE OR REPLACE FUNCTION globalcart.apply_funnel_events(p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_claimed bigint; v_rejected bigint; v_duplicates bigint;
  v_inserted bigint; v_applied_max timestamptz; v_inferred_customers bigint; v_inferred_products bigint;
  v_stored uuid[];  -- event_ids of the batch already stored
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_funnel_events;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  -- A session writing funnel events outside the refresh (a backfill) makes it wait until that
  -- session ends, so that an event_id it stores is seen below: partitioned by event_ts, the table
  -- has no index that makes an event_id unique across months and would make an insert wait.
  -- Only the parent is locked (writers lock it; autovacuum, which works on partitions, is not
  -- waited for); readers are not blocked; the wait is bounded by lock_timeout.
  LOCK TABLE ONLY globalcart.fact_funnel_events IN SHARE ROW EXCLUSIVE MODE;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.event_id, c.session_id, c.event_ts, c.event_type, c.channel, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.event_id IS NULL THEN 'event_id' END,
                    CASE WHEN c.session_id IS NULL THEN 'session_id' END,
                    CASE WHEN c.event_ts IS NULL THEN 'event_ts' END,
                    CASE WHEN c.event_type IS NULL THEN 'event_type' END,
                    CASE WHEN c.channel IS NULL THEN 'channel' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN c.cart_value_usd = 'NaN' THEN 'not_a_number: cart_value_usd'
             WHEN NOT (isfinite(c.event_ts) AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.event_ts) THEN 'event_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.event_type NOT IN ('PAGE_VIEW', 'PRODUCT_VIEW', 'ADD_TO_CART', 'CHECKOUT_START',
                                       'PAYMENT_ATTEMPT', 'PAYMENT_FAILED', 'PURCHASE')
             THEN 'unknown_enum_value: event_type'
             WHEN c.cart_value_usd < 0 THEN 'negative_amount: cart_value_usd'
           END AS reject_reason
    FROM pg_temp.gc_claim_funnel_events c
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'funnel_events', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_funnel_events
    SELECT DISTINCT ON (k.event_id)
           k.event_id, k.session_id, k.customer_id, k.event_ts, k.event_type, k.product_id, k.order_id,
           k.cart_value_usd, k.channel, k.updated_at, k.stg_id, k.ingested_at
    FROM checked k
    WHERE k.reject_reason IS NULL
    ORDER BY k.event_id, k.updated_at DESC, k.stg_id DESC
  )
  SELECT count(*) INTO v_rejected FROM rejects;
  -- not stored yet: the batch's event_ids stored already (in any month, by the event_id index of
  -- each partition; on Citus on every shard, the funnel being distributed by session_id) go. A list
  -- of ids, not a join: each is looked up once whatever the plan (EXECUTE: a constant to the planner).
  EXECUTE 'SELECT array_agg(DISTINCT f.event_id) FROM globalcart.fact_funnel_events f WHERE f.event_id = ANY ($1)'
    INTO v_stored USING ARRAY(SELECT w.event_id FROM globalcart.work_funnel_events w);
  IF v_stored IS NOT NULL THEN
    DELETE FROM globalcart.work_funnel_events w WHERE w.event_id = ANY (v_stored);
  END IF;

  v_inferred_customers := globalcart.add_inferred_customers(
    ARRAY(SELECT w.customer_id FROM globalcart.work_funnel_events w), p_now);
  v_inferred_products := globalcart.add_inferred_products(
    ARRAY(SELECT w.product_id FROM globalcart.work_funnel_events w), p_now);

  PERFORM globalcart.add_month_partitions('fact_funnel_events', ARRAY(
    SELECT DISTINCT date_trunc('month', w.event_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      FROM globalcart.work_funnel_events w));

  WITH appended AS (
    INSERT INTO globalcart.fact_funnel_events
           (event_id, session_id, customer_id, event_ts, event_type, product_id, order_id,
            cart_value_usd, channel, updated_at)
    SELECT w.event_id, w.session_id, w.customer_id, w.event_ts, w.event_type, w.product_id, w.order_id,
           w.cart_value_usd, w.channel, w.updated_at
    FROM globalcart.work_funnel_events w
    ON CONFLICT (session_id, event_id, event_ts) DO NOTHING
    RETURNING updated_at
  )
  SELECT count(*), max(a.updated_at) INTO v_inserted, v_applied_max FROM appended a;

  -- duplicate: replays of a stored event_id, copies within the batch, and a concurrent insert's
  -- conflicts (append-only: what is not inserted is a duplicate, nothing is updated or stale)
  v_duplicates := v_claimed - v_rejected - v_inserted;
  RETURN globalcart.finish_source('funnel_events', p_run_id, v_applied_max, v_claimed, v_rejected,
                                  p_winners => v_inserted, p_duplicate => v_duplicates, p_stale => 0,
                                  p_inserted => v_inserted, p_updated => 0)
         || jsonb_build_object('inferred_customers', v_inferred_customers,
                               'inferred_products', v_inferred_products);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_funnel_events(bigint, timestamptz, timestamptz) IS
  'Refresh step for source funnel_events: validate, drop replayed event_ids (duplicate), inferred members, append with ON CONFLICT DO NOTHING, watermark.';
