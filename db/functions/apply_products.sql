-- globalcart.apply_products(run_id, latest_valid): applies the claimed products
-- (pg_temp.gc_claim_products) to dim_product. Steps, each one statement over the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      negative list price) -> etl_rejects; keep the
--      newest valid version per product_id;
--   2. guarded upsert: a version replaces the stored row only when its updated_at is
--      greater, or when the stored row is an inferred placeholder;
--   3. globalcart.finish_source(): advance the 'products' watermark, count every claimed row once.
CREATE OR REPLACE FUNCTION globalcart.apply_products(p_run_id bigint, p_latest_valid timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_inserted bigint; v_updated bigint; v_applied_max timestamptz;
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_products;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.product_id, c.sku, c.product_name, c.category, c.list_price_usd, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.product_id IS NULL THEN 'product_id' END,
                    CASE WHEN c.sku IS NULL THEN 'sku' END,
                    CASE WHEN c.product_name IS NULL THEN 'product_name' END,
                    CASE WHEN c.category IS NULL THEN 'category' END,
                    CASE WHEN c.list_price_usd IS NULL THEN 'list_price_usd' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN c.list_price_usd = 'NaN' THEN 'not_a_number: list_price_usd'
             WHEN NOT isfinite(c.updated_at) THEN 'invalid_timestamp: updated_at'
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.list_price_usd < 0 THEN 'negative_amount: list_price_usd'
           END AS reject_reason
    FROM pg_temp.gc_claim_products c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.product_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.product_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'products', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_products
           (product_id, sku, product_name, category, list_price_usd, updated_at, stg_id, ingested_at, deleted)
    SELECT r.product_id, r.sku, r.product_name, r.category, r.list_price_usd, r.updated_at,
           r.stg_id, r.ingested_at, r.deleted
    FROM ranked r WHERE r.rn = 1
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM rejects), (SELECT count(*) FROM winners),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at = r.newest),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at < r.newest)
  INTO v_rejected, v_winners, v_duplicate, v_stale;

  WITH upserted AS (
    INSERT INTO globalcart.dim_product AS t
           (product_id, sku, product_name, category, list_price_usd, updated_at, is_inferred, deleted_at)
    SELECT w.product_id, w.sku, w.product_name, w.category, w.list_price_usd, w.updated_at, false,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_products w
    ON CONFLICT (product_id) DO UPDATE
      SET sku = EXCLUDED.sku, product_name = EXCLUDED.product_name, category = EXCLUDED.category,
          list_price_usd = EXCLUDED.list_price_usd, updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, is_inferred = false
      WHERE EXCLUDED.updated_at > t.updated_at OR t.is_inferred
    RETURNING (t.xmax = 0) AS inserted, t.updated_at
  )
  SELECT count(*) FILTER (WHERE u.inserted), count(*) FILTER (WHERE NOT u.inserted), max(u.updated_at)
  INTO v_inserted, v_updated, v_applied_max
  FROM upserted u;

  RETURN globalcart.finish_source('products', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_updated);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_products(bigint, timestamptz) IS
  'Refresh step for source products: validate, dedup, guarded upsert into dim_product (replacing inferred members), watermark.';
