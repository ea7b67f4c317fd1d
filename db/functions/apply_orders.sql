-- globalcart.apply_orders(run_id, now, latest_valid): applies the claimed orders (pg_temp.gc_claim_orders)
-- to fact_orders. Steps, each one statement over the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      unknown order_status, unknown currency, negative amount) -> etl_rejects; keep the
--      newest valid version per order_id;
--   2. a newer version that would move a stored order backwards or out of CANCELLED ->
--      etl_rejects 'invalid_status_transition' (the stored row stays) — except a tombstone (the
--      order deleted in its source, migration 0009) and a version of a deleted order (re-inserted);
--   3. inferred dim_customer members for unknown customers;
--   4. the monthly partitions of the batch's order_ts (fact_orders and its children's tables);
--   5. a newer version with another order_ts: the stored order moves to it, its children too
--      (they carry its order_ts) — never a second row; an older one is stale;
--   6. guarded upsert keyed (order_id, order_ts) (updated_at newer, transition allowed);
--      BEFORE UPDATE audits; a tombstone sets deleted_at, any later version clears it;
--   7. the directory and the order's own columns in globalcart.kpi_order_state;
--   8. globalcart.finish_source(): advance the 'orders' watermark, count every claimed row once.
-- Every lookup of a stored order reads one partition: where it is stored (work_orders.stored_ts)
-- comes from the directory (kpi_order_state); an order id above every stored one cannot be stored
-- and is looked up nowhere (a seed, a backfill, most new orders: the bulk path); one the directory
-- does not know but not above them (written outside the refresh) is looked up in every month.
-- The winners stay in globalcart.work_orders for derive_returned_orders().
CREATE OR REPLACE FUNCTION globalcart.apply_orders(p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_candidates bigint; v_existing bigint; v_changed bigint;
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_backwards bigint; v_inserted bigint; v_updated bigint; v_applied_max timestamptz;
  v_inferred bigint; v_moved bigint; v_moved_max timestamptz;
  v_months timestamptz[];
  v_max_stored bigint;   -- the greatest order_id stored: a greater one cannot be
  v_unknown bigint[];    -- ids the directory does not know, not above it
  v_ids bigint[];       -- the batch's customers (for the inferred members)
  v_to_move bigint;     -- stored orders whose newer version has another order_ts
  v_currencies text[] := ARRAY(SELECT c.currency_code::text FROM globalcart.dim_currency c);
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_orders;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.order_id, c.customer_id, c.order_ts, c.order_status, c.channel, c.country_code,
                            c.currency, c.gross_amount, c.discount_amount, c.shipping_amount, c.net_amount,
                            c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.order_id IS NULL THEN 'order_id' END,
                    CASE WHEN c.customer_id IS NULL THEN 'customer_id' END,
                    CASE WHEN c.order_ts IS NULL THEN 'order_ts' END,
                    CASE WHEN c.order_status IS NULL THEN 'order_status' END,
                    CASE WHEN c.channel IS NULL THEN 'channel' END,
                    CASE WHEN c.country_code IS NULL THEN 'country_code' END,
                    CASE WHEN c.currency IS NULL THEN 'currency' END,
                    CASE WHEN c.gross_amount IS NULL THEN 'gross_amount' END,
                    CASE WHEN c.discount_amount IS NULL THEN 'discount_amount' END,
                    CASE WHEN c.shipping_amount IS NULL THEN 'shipping_amount' END,
                    CASE WHEN c.net_amount IS NULL THEN 'net_amount' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN 'NaN' IN (c.gross_amount, c.discount_amount, c.shipping_amount, c.net_amount)
             THEN 'not_a_number: ' || concat_ws(', ',
                    CASE WHEN c.gross_amount = 'NaN' THEN 'gross_amount' END,
                    CASE WHEN c.discount_amount = 'NaN' THEN 'discount_amount' END,
                    CASE WHEN c.shipping_amount = 'NaN' THEN 'shipping_amount' END,
                    CASE WHEN c.net_amount = 'NaN' THEN 'net_amount' END)
             WHEN NOT (isfinite(c.order_ts) AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.order_ts) THEN 'order_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.order_status NOT IN ('PLACED', 'PAID', 'SHIPPED', 'DELIVERED', 'COMPLETED', 'RETURNED', 'CANCELLED')
             THEN 'unknown_enum_value: order_status'
             WHEN NOT c.currency::text = ANY (v_currencies) THEN 'unknown_currency: currency'
             WHEN least(c.gross_amount, c.discount_amount, c.shipping_amount, c.net_amount) < 0
             THEN 'negative_amount: ' || concat_ws(', ',
                    CASE WHEN c.gross_amount < 0 THEN 'gross_amount' END,
                    CASE WHEN c.discount_amount < 0 THEN 'discount_amount' END,
                    CASE WHEN c.shipping_amount < 0 THEN 'shipping_amount' END,
                    CASE WHEN c.net_amount < 0 THEN 'net_amount' END)
           END AS reject_reason
    FROM pg_temp.gc_claim_orders c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.order_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.order_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'orders', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_orders
           (order_id, customer_id, order_ts, order_status, channel, country_code, currency, gross_amount,
            discount_amount, shipping_amount, net_amount, updated_at, stg_id, ingested_at, deleted)
    SELECT r.order_id, r.customer_id, r.order_ts, r.order_status, r.channel, r.country_code, r.currency,
           r.gross_amount, r.discount_amount, r.shipping_amount, r.net_amount, r.updated_at,
           r.stg_id, r.ingested_at, r.deleted
    FROM ranked r WHERE r.rn = 1
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM rejects), (SELECT count(*) FROM winners),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at = r.newest),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at < r.newest)
  INTO v_rejected, v_winners, v_duplicate, v_stale;

  -- Where each order is stored (its partition): the directory, then, for an id it does not know
  -- that is not above every stored one, every month (a list of ids: each looked up once).
  SELECT globalcart.bulk_bound(max(f.order_id)) INTO v_max_stored FROM globalcart.fact_orders f;
  UPDATE globalcart.work_orders w SET stored_ts = s.order_ts
    FROM globalcart.kpi_order_state s
   WHERE s.order_id = w.order_id AND w.order_id <= v_max_stored;
  SELECT coalesce(array_agg(w.order_id), '{}') INTO v_unknown
    FROM globalcart.work_orders w WHERE w.stored_ts IS NULL AND w.order_id <= v_max_stored;
  IF cardinality(v_unknown) > 0 THEN
    EXECUTE 'UPDATE globalcart.work_orders w SET stored_ts = f.order_ts
               FROM (SELECT f.order_id, f.order_ts FROM globalcart.fact_orders f WHERE f.order_id = ANY ($1)) AS f
              WHERE w.order_id = f.order_id'
      USING v_unknown;
  END IF;

  -- A newer version may not move a stored order backwards or out of CANCELLED; an older version
  -- of an order stored under another order_ts is stale (the upsert, keyed by (order_id,
  -- order_ts), would not see it).
  WITH removed AS (
    DELETE FROM globalcart.work_orders w
    USING globalcart.fact_orders f
    WHERE w.stored_ts IS NOT NULL AND f.order_id = w.order_id AND f.order_ts = w.stored_ts
      AND ((w.updated_at > f.updated_at AND NOT w.deleted AND f.deleted_at IS NULL
            AND NOT globalcart.order_status_transition_allowed(f.order_status, w.order_status))
           OR (w.order_ts <> f.order_ts AND w.updated_at <= f.updated_at))
    RETURNING w.*, w.updated_at > f.updated_at AS backwards
  )
  INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
  SELECT p_run_id, 'orders', 'invalid_status_transition', to_jsonb(b) - 'backwards' FROM removed b WHERE b.backwards;
  GET DIAGNOSTICS v_backwards = ROW_COUNT;

  SELECT coalesce(array_agg(w.customer_id), '{}') INTO v_ids FROM globalcart.work_orders w;
  v_inferred := globalcart.add_inferred_customers(v_ids, p_now);

  -- Each month of the batch has its partition, in fact_orders and in its children's tables (and
  -- how many stored orders the batch moves to another time, read in the same pass).
  SELECT coalesce(array_agg(DISTINCT date_trunc('month', w.order_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), '{}'),
         count(*) FILTER (WHERE w.stored_ts IS NOT NULL AND w.stored_ts <> w.order_ts)
    INTO v_months, v_to_move
    FROM globalcart.work_orders w;
  IF cardinality(v_months) > 0 THEN
    PERFORM globalcart.add_month_partitions(s.fact_table, v_months)
       FROM globalcart.etl_sources s WHERE s.source_name = 'orders' OR s.waits_for_order;
  END IF;

  -- A newer version with another order_ts moves the order, and its children with it (they carry
  -- its order_ts: their partition), to that time; both updates are audited. Never a second row.
  -- (Not run when no order moves: the usual batch — on Citus five distributed statements saved.)
  v_moved := 0;
  IF v_to_move > 0 THEN
    WITH moved AS (
      UPDATE globalcart.fact_orders t
         SET customer_id = w.customer_id, order_ts = w.order_ts, order_status = w.order_status, channel = w.channel,
             country_code = w.country_code, currency = w.currency, gross_amount = w.gross_amount,
             discount_amount = w.discount_amount, shipping_amount = w.shipping_amount, net_amount = w.net_amount,
             updated_at = w.updated_at, deleted_at = CASE WHEN w.deleted THEN w.updated_at END
        FROM globalcart.work_orders w
       WHERE w.stored_ts IS NOT NULL AND t.order_id = w.order_id AND t.order_ts = w.stored_ts AND w.stored_ts <> w.order_ts
         AND w.updated_at > t.updated_at
      RETURNING t.order_id, t.order_ts, t.updated_at
    ), items AS (
      UPDATE globalcart.fact_order_items c SET order_ts = m.order_ts FROM moved m WHERE c.order_id = m.order_id
    ), payments AS (
      UPDATE globalcart.fact_payments c SET order_ts = m.order_ts FROM moved m WHERE c.order_id = m.order_id
    ), shipments AS (
      UPDATE globalcart.fact_shipments c SET order_ts = m.order_ts FROM moved m WHERE c.order_id = m.order_id
    ), returns AS (
      UPDATE globalcart.fact_returns c SET order_ts = m.order_ts FROM moved m WHERE c.order_id = m.order_id
    )
    SELECT count(*), max(m.updated_at) INTO v_moved, v_moved_max FROM moved m;
  END IF;

  -- (a partitioned table cannot say in RETURNING whether a row was inserted: count the stored keys —
  -- each one left is stored under the order_ts of its version now: moved, or stored there already)
  SELECT count(*), count(w.stored_ts) INTO v_candidates, v_existing FROM globalcart.work_orders w;

  WITH upserted AS (
    INSERT INTO globalcart.fact_orders AS t
           (order_id, customer_id, order_ts, order_status, channel, country_code, currency,
            gross_amount, discount_amount, shipping_amount, net_amount, updated_at, deleted_at)
    SELECT w.order_id, w.customer_id, w.order_ts, w.order_status, w.channel, w.country_code, w.currency,
           w.gross_amount, w.discount_amount, w.shipping_amount, w.net_amount, w.updated_at,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_orders w
    ON CONFLICT (order_id, order_ts) DO UPDATE
      SET customer_id = EXCLUDED.customer_id, order_ts = EXCLUDED.order_ts, order_status = EXCLUDED.order_status,
          channel = EXCLUDED.channel, country_code = EXCLUDED.country_code, currency = EXCLUDED.currency,
          gross_amount = EXCLUDED.gross_amount, discount_amount = EXCLUDED.discount_amount,
          shipping_amount = EXCLUDED.shipping_amount, net_amount = EXCLUDED.net_amount,
          updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
      WHERE EXCLUDED.updated_at > t.updated_at
        AND (EXCLUDED.deleted_at IS NOT NULL OR t.deleted_at IS NOT NULL  -- (a delete, a re-insert: any status)
             OR globalcart.order_status_transition_allowed(t.order_status, EXCLUDED.order_status))
    RETURNING t.updated_at
  )
  SELECT count(*), max(u.updated_at) INTO v_changed, v_applied_max FROM upserted u;
  v_inserted := v_candidates - v_existing;  -- a key not stored is inserted; the rest of what changed, updated
  v_updated := v_changed - v_inserted;

  -- The directory and the order's own columns of its KPI state, as stored now (the children's sums
  -- follow at the end of the refresh: kpi_summaries_apply): an order that was not stored is what the
  -- batch inserted; one that was is read back, from its one partition of fact_orders.
  INSERT INTO globalcart.kpi_order_state AS s
         (order_id, order_ts, country_code, channel, currency, order_status, deleted, gross_amount, net_amount,
          units, refund_amount, delivered_shipments, breached_shipments, payments, failed_payments)
  SELECT w.order_id, w.order_ts, w.country_code, w.channel, w.currency, w.order_status, w.deleted,
         w.gross_amount, w.net_amount, 0, 0, 0, 0, 0, 0
    FROM globalcart.work_orders w
   WHERE w.stored_ts IS NULL
  UNION ALL
  SELECT f.order_id, f.order_ts, f.country_code, f.channel, f.currency, f.order_status, f.deleted_at IS NOT NULL,
         f.gross_amount, f.net_amount, 0, 0, 0, 0, 0, 0
    FROM globalcart.work_orders w
    JOIN globalcart.fact_orders f ON f.order_id = w.order_id AND f.order_ts = w.order_ts
   WHERE w.stored_ts IS NOT NULL
  ON CONFLICT (order_id) DO UPDATE
    SET order_ts = EXCLUDED.order_ts, country_code = EXCLUDED.country_code, channel = EXCLUDED.channel,
        currency = EXCLUDED.currency, order_status = EXCLUDED.order_status, deleted = EXCLUDED.deleted,
        gross_amount = EXCLUDED.gross_amount, net_amount = EXCLUDED.net_amount
    WHERE (s.order_ts, s.country_code, s.channel, s.currency, s.order_status, s.deleted, s.gross_amount, s.net_amount)
          IS DISTINCT FROM (EXCLUDED.order_ts, EXCLUDED.country_code, EXCLUDED.channel, EXCLUDED.currency,
                            EXCLUDED.order_status, EXCLUDED.deleted, EXCLUDED.gross_amount, EXCLUDED.net_amount);

  RETURN globalcart.finish_source('orders', p_run_id, greatest(v_applied_max, v_moved_max), v_claimed, v_rejected,
                                  v_winners, v_duplicate, v_stale, v_inserted, v_updated + v_moved,
                                  p_held => v_backwards)
         || jsonb_build_object('inferred_customers', v_inferred);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_orders(bigint, timestamptz, timestamptz) IS
  'Refresh step for source orders: validate, dedup, status-transition check, inferred customers, guarded upsert into fact_orders, watermark.';
