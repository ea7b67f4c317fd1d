-- globalcart.apply_customers(run_id, latest_valid): applies the claimed customers
-- (pg_temp.gc_claim_customers) to dim_customer. Steps, each one statement over the batch:
--   1. validate (missing required value, infinite timestamp, updated_at in the future) ->
--      etl_rejects; keep the newest valid version per
--      customer_id (older in-batch versions count as stale, exact replays as duplicate);
--   2. guarded upsert: a version replaces the stored row only when its updated_at is
--      greater, or when the stored row is an inferred placeholder;
--   3. globalcart.finish_source(): advance the 'customers' watermark, count every claimed row once.
-- Returns the source's counts (globalcart.source_stats).
CREATE OR REPLACE FUNCTION globalcart.apply_customers(p_run_id bigint, p_latest_valid timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_inserted bigint; v_updated bigint; v_applied_max timestamptz;
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_customers;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.customer_id, c.full_name, c.email, c.country_code, c.signup_ts,
                            c.segment, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.customer_id IS NULL THEN 'customer_id' END,
                    CASE WHEN c.full_name IS NULL THEN 'full_name' END,
                    CASE WHEN c.email IS NULL THEN 'email' END,
                    CASE WHEN c.country_code IS NULL THEN 'country_code' END,
                    CASE WHEN c.signup_ts IS NULL THEN 'signup_ts' END,
                    CASE WHEN c.segment IS NULL THEN 'segment' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN NOT (isfinite(c.signup_ts) AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.signup_ts) THEN 'signup_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
           END AS reject_reason
    FROM pg_temp.gc_claim_customers c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.customer_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.customer_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'customers', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_customers
           (customer_id, full_name, email, country_code, signup_ts, segment, updated_at, stg_id, ingested_at,
            deleted)
    SELECT r.customer_id, r.full_name, r.email, r.country_code, r.signup_ts, r.segment, r.updated_at,
           r.stg_id, r.ingested_at, r.deleted
    FROM ranked r WHERE r.rn = 1
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM rejects), (SELECT count(*) FROM winners),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at = r.newest),
         (SELECT count(*) FROM ranked r WHERE r.rn > 1 AND r.updated_at < r.newest)
  INTO v_rejected, v_winners, v_duplicate, v_stale;

  WITH upserted AS (
    INSERT INTO globalcart.dim_customer AS t
           (customer_id, full_name, email, country_code, signup_ts, segment, updated_at, is_inferred, deleted_at)
    SELECT w.customer_id, w.full_name, w.email, w.country_code, w.signup_ts, w.segment, w.updated_at, false,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_customers w
    ON CONFLICT (customer_id) DO UPDATE
      SET full_name = EXCLUDED.full_name, email = EXCLUDED.email, country_code = EXCLUDED.country_code,
          signup_ts = EXCLUDED.signup_ts, segment = EXCLUDED.segment, updated_at = EXCLUDED.updated_at,
          deleted_at = EXCLUDED.deleted_at,
          is_inferred = false
      WHERE EXCLUDED.updated_at > t.updated_at OR t.is_inferred
    RETURNING (t.xmax = 0) AS inserted, t.updated_at
  )
  SELECT count(*) FILTER (WHERE u.inserted), count(*) FILTER (WHERE NOT u.inserted), max(u.updated_at)
  INTO v_inserted, v_updated, v_applied_max
  FROM upserted u;

  RETURN globalcart.finish_source('customers', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_updated);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_customers(bigint, timestamptz) IS
  'Refresh step for source customers: validate, dedup, guarded upsert into dim_customer (replacing inferred members), watermark.';
