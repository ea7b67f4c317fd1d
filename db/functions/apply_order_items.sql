-- globalcart.apply_order_items(run_id, now, latest_valid, orphan_cutoff): applies the claimed order items
-- (pg_temp.gc_claim_order_items) to fact_order_items. Runs after apply_orders. Steps, each
-- one statement over the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      non-positive quantity, negative amount) -> etl_rejects; keep the newest valid version
--      per order_item_id;
--   2-3. globalcart.place_child_rows(): a key stored under another order ->
--      'order_id_changed'; a row whose order is not in fact_orders waits in staging, 'orphan'
--      after etl_settings 'orphan_timeout'; it counts the new keys among the rows left;
--   4. inferred dim_product members for unknown products;
--   5. guarded upsert (updated_at newer); BEFORE UPDATE audits;
--   6. globalcart.finish_source(): advance the 'order_items' watermark, count every claimed row once.
CREATE OR REPLACE FUNCTION globalcart.apply_order_items(
    p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_changed bigint;
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_moved bigint; v_orphans bigint; v_deferred bigint; v_inserted bigint;
  v_applied_max timestamptz; v_inferred bigint;
  v_ids bigint[];  -- the batch's products (for the inferred members)
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_order_items;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.order_item_id, c.order_id, c.product_id, c.quantity, c.unit_price,
                            c.discount_amount, c.line_amount, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.order_item_id IS NULL THEN 'order_item_id' END,
                    CASE WHEN c.order_id IS NULL THEN 'order_id' END,
                    CASE WHEN c.product_id IS NULL THEN 'product_id' END,
                    CASE WHEN c.quantity IS NULL THEN 'quantity' END,
                    CASE WHEN c.unit_price IS NULL THEN 'unit_price' END,
                    CASE WHEN c.discount_amount IS NULL THEN 'discount_amount' END,
                    CASE WHEN c.line_amount IS NULL THEN 'line_amount' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN 'NaN' IN (c.unit_price, c.discount_amount, c.line_amount)
             THEN 'not_a_number: ' || concat_ws(', ',
                    CASE WHEN c.unit_price = 'NaN' THEN 'unit_price' END,
                    CASE WHEN c.discount_amount = 'NaN' THEN 'discount_amount' END,
                    CASE WHEN c.line_amount = 'NaN' THEN 'line_amount' END)
             WHEN NOT isfinite(c.updated_at) THEN 'invalid_timestamp: updated_at'
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.quantity <= 0 THEN 'non_positive_quantity: quantity'
             WHEN least(c.unit_price, c.discount_amount, c.line_amount) < 0
             THEN 'negative_amount: ' || concat_ws(', ',
                    CASE WHEN c.unit_price < 0 THEN 'unit_price' END,
                    CASE WHEN c.discount_amount < 0 THEN 'discount_amount' END,
                    CASE WHEN c.line_amount < 0 THEN 'line_amount' END)
           END AS reject_reason
    FROM pg_temp.gc_claim_order_items c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.order_item_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.order_item_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'order_items', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_order_items
           (order_item_id, order_id, product_id, quantity, unit_price, discount_amount, line_amount,
            updated_at, stg_id, ingested_at, deferrals, deleted)
    SELECT r.order_item_id, r.order_id, r.product_id, r.quantity, r.unit_price, r.discount_amount,
           r.line_amount, r.updated_at, r.stg_id, r.ingested_at, r.deferrals, r.deleted
    FROM ranked r
    WHERE r.rn = 1
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM rejects), (SELECT count(*) FROM winners),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at = r.newest),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at < r.newest)
  INTO v_rejected, v_winners, v_duplicate, v_stale;

  -- Never to another order; early-arriving rows wait for their order (orphan after the timeout).
  -- (and which keys are new: the upsert inserts those, updates the others if newer)
  SELECT h.moved, h.orphans, h.deferred, h.new_keys INTO v_moved, v_orphans, v_deferred, v_inserted
    FROM globalcart.place_child_rows('order_items', p_run_id, p_orphan_cutoff) AS h;

  SELECT coalesce(array_agg(w.product_id), '{}') INTO v_ids FROM globalcart.work_order_items w;
  v_inferred := globalcart.add_inferred_products(v_ids, p_now);

  WITH upserted AS (
    INSERT INTO globalcart.fact_order_items AS t
           (order_item_id, order_id, product_id, quantity, unit_price, discount_amount, line_amount, updated_at, order_ts, deleted_at)
    SELECT w.order_item_id, w.order_id, w.product_id, w.quantity, w.unit_price, w.discount_amount,
           w.line_amount, w.updated_at, w.order_ts,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_order_items w
    ON CONFLICT (order_id, order_item_id, order_ts) DO UPDATE
      SET product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price,
          discount_amount = EXCLUDED.discount_amount, line_amount = EXCLUDED.line_amount,
          updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
      WHERE EXCLUDED.updated_at > t.updated_at
    RETURNING t.updated_at
  )
  SELECT count(*), max(u.updated_at) INTO v_changed, v_applied_max FROM upserted u;
  RETURN globalcart.finish_source('order_items', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_changed - v_inserted,
                                  p_held => v_moved + v_orphans, p_deferred => v_deferred)
         || jsonb_build_object('inferred_products', v_inferred);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_order_items(bigint, timestamptz, timestamptz, timestamptz) IS
  'Refresh step for source order_items: validate, dedup, key check, wait for the order (defer/orphan), inferred products, guarded upsert, watermark.';
