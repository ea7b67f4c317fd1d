-- globalcart.apply_payments(run_id, latest_valid, orphan_cutoff): applies the claimed payments
-- (pg_temp.gc_claim_payments) to fact_payments. Runs after apply_orders. Steps, each one
-- statement over the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      unknown payment_status, unknown currency, negative amount) -> etl_rejects; keep the
--      newest valid version per payment_id;
--   2-3. globalcart.place_child_rows(): a key stored under another order ->
--      'order_id_changed'; a row whose order is not in fact_orders waits in staging, 'orphan'
--      after etl_settings 'orphan_timeout'; it counts the new keys among the rows left;
--   4. guarded upsert (updated_at newer); BEFORE UPDATE audits;
--   5. globalcart.finish_source(): advance the 'payments' watermark, count every claimed row once.
CREATE OR REPLACE FUNCTION globalcart.apply_payments(p_run_id bigint, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_changed bigint;
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_moved bigint; v_orphans bigint; v_deferred bigint; v_inserted bigint;
  v_applied_max timestamptz;
  v_currencies text[] := ARRAY(SELECT c.currency_code::text FROM globalcart.dim_currency c);
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_payments;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.payment_id, c.order_id, c.payment_ts, c.payment_method, c.payment_status,
                            c.amount, c.currency, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.payment_id IS NULL THEN 'payment_id' END,
                    CASE WHEN c.order_id IS NULL THEN 'order_id' END,
                    CASE WHEN c.payment_ts IS NULL THEN 'payment_ts' END,
                    CASE WHEN c.payment_method IS NULL THEN 'payment_method' END,
                    CASE WHEN c.payment_status IS NULL THEN 'payment_status' END,
                    CASE WHEN c.amount IS NULL THEN 'amount' END,
                    CASE WHEN c.currency IS NULL THEN 'currency' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN c.amount = 'NaN' THEN 'not_a_number: amount'
             WHEN NOT (isfinite(c.payment_ts) AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.payment_ts) THEN 'payment_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.payment_status NOT IN ('AUTHORIZED', 'CAPTURED', 'FAILED', 'REFUNDED')
             THEN 'unknown_enum_value: payment_status'
             WHEN NOT c.currency::text = ANY (v_currencies) THEN 'unknown_currency: currency'
             WHEN c.amount < 0 THEN 'negative_amount: amount'
           END AS reject_reason
    FROM pg_temp.gc_claim_payments c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.payment_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.payment_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'payments', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_payments
           (payment_id, order_id, payment_ts, payment_method, payment_status, amount, currency, updated_at,
            stg_id, ingested_at, deferrals, deleted)
    SELECT r.payment_id, r.order_id, r.payment_ts, r.payment_method, r.payment_status, r.amount,
           r.currency, r.updated_at, r.stg_id, r.ingested_at, r.deferrals, r.deleted
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
    FROM globalcart.place_child_rows('payments', p_run_id, p_orphan_cutoff) AS h;

  WITH upserted AS (
    INSERT INTO globalcart.fact_payments AS t
           (payment_id, order_id, payment_ts, payment_method, payment_status, amount, currency, updated_at, order_ts, deleted_at)
    SELECT w.payment_id, w.order_id, w.payment_ts, w.payment_method, w.payment_status, w.amount,
           w.currency, w.updated_at, w.order_ts,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_payments w
    ON CONFLICT (order_id, payment_id, order_ts) DO UPDATE
      SET payment_ts = EXCLUDED.payment_ts, payment_method = EXCLUDED.payment_method,
          payment_status = EXCLUDED.payment_status, amount = EXCLUDED.amount,
          currency = EXCLUDED.currency, updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
      WHERE EXCLUDED.updated_at > t.updated_at
    RETURNING t.updated_at
  )
  SELECT count(*), max(u.updated_at) INTO v_changed, v_applied_max FROM upserted u;
  RETURN globalcart.finish_source('payments', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_changed - v_inserted,
                                  p_held => v_moved + v_orphans, p_deferred => v_deferred);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_payments(bigint, timestamptz, timestamptz) IS
  'Refresh step for source payments: validate, dedup, key check, wait for the order (defer/orphan), guarded upsert, watermark.';
