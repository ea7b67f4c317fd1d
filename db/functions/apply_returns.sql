-- globalcart.apply_returns(run_id, latest_valid, orphan_cutoff): applies the claimed returns
-- (pg_temp.gc_claim_returns) to fact_returns. Runs after apply_orders; the order status
-- change a return causes is derive_returned_orders()'s. Steps, each one statement over
-- the batch:
--   1. validate (missing required value, NaN, infinite timestamp, updated_at in the future,
--      unknown return_status, negative refund_amount) -> etl_rejects; keep the newest valid
--      version per return_id;
--   2-3. globalcart.place_child_rows(): a key stored under another order ->
--      'order_id_changed'; a row whose order is not in fact_orders waits in staging, 'orphan'
--      after etl_settings 'orphan_timeout'; it counts the new keys among the rows left;
--   4. guarded upsert (updated_at newer); BEFORE UPDATE audits;
--   5. globalcart.finish_source(): advance the 'returns' watermark, count every claimed row once.
-- The winners stay in globalcart.work_returns for derive_returned_orders().
CREATE OR REPLACE FUNCTION globalcart.apply_returns(p_run_id bigint, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_changed bigint;
  v_claimed bigint; v_rejected bigint; v_winners bigint; v_duplicate bigint; v_stale bigint;
  v_moved bigint; v_orphans bigint; v_deferred bigint; v_inserted bigint;
  v_applied_max timestamptz;
BEGIN
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_returns;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.return_id, c.order_id, c.return_ts, c.reason, c.refund_amount,
                            c.return_status, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.return_id IS NULL THEN 'return_id' END,
                    CASE WHEN c.order_id IS NULL THEN 'order_id' END,
                    CASE WHEN c.return_ts IS NULL THEN 'return_ts' END,
                    CASE WHEN c.reason IS NULL THEN 'reason' END,
                    CASE WHEN c.refund_amount IS NULL THEN 'refund_amount' END,
                    CASE WHEN c.return_status IS NULL THEN 'return_status' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN c.refund_amount = 'NaN' THEN 'not_a_number: refund_amount'
             WHEN NOT (isfinite(c.return_ts) AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.return_ts) THEN 'return_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.return_status NOT IN ('REQUESTED', 'APPROVED', 'REFUNDED', 'REJECTED')
             THEN 'unknown_enum_value: return_status'
             WHEN c.refund_amount < 0 THEN 'negative_amount: refund_amount'
           END AS reject_reason
    FROM pg_temp.gc_claim_returns c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.return_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.return_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'returns', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_returns
           (return_id, order_id, order_item_id, return_ts, reason, refund_amount, return_status, updated_at,
            stg_id, ingested_at, deferrals, deleted)
    SELECT r.return_id, r.order_id, r.order_item_id, r.return_ts, r.reason, r.refund_amount,
           r.return_status, r.updated_at, r.stg_id, r.ingested_at, r.deferrals, r.deleted
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
    FROM globalcart.place_child_rows('returns', p_run_id, p_orphan_cutoff) AS h;

  WITH upserted AS (
    INSERT INTO globalcart.fact_returns AS t
           (return_id, order_id, order_item_id, return_ts, reason, refund_amount, return_status, updated_at, order_ts, deleted_at)
    SELECT w.return_id, w.order_id, w.order_item_id, w.return_ts, w.reason, w.refund_amount,
           w.return_status, w.updated_at, w.order_ts,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_returns w
    ON CONFLICT (order_id, return_id, order_ts) DO UPDATE
      SET order_item_id = EXCLUDED.order_item_id, return_ts = EXCLUDED.return_ts, reason = EXCLUDED.reason,
          refund_amount = EXCLUDED.refund_amount, return_status = EXCLUDED.return_status,
          updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
      WHERE EXCLUDED.updated_at > t.updated_at
    RETURNING t.updated_at
  )
  SELECT count(*), max(u.updated_at) INTO v_changed, v_applied_max FROM upserted u;
  RETURN globalcart.finish_source('returns', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_changed - v_inserted,
                                  p_held => v_moved + v_orphans, p_deferred => v_deferred);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_returns(bigint, timestamptz, timestamptz) IS
  'Refresh step for source returns: validate, dedup, key check, wait for the order (defer/orphan), guarded upsert, watermark.';
