-- globalcart.apply_shipments(run_id, latest_valid, orphan_cutoff): applies the claimed shipments
-- (pg_temp.gc_claim_shipments) to fact_shipments. Runs after apply_orders. The staged
-- sla_breached_flag is ignored: fact_shipments computes it (delivered_ts > promised_ts).
-- Steps, each one statement over the batch:
--   1. validate (missing required value, infinite timestamp, updated_at in the future,
--      unknown shipment_status) -> etl_rejects; keep the newest valid version per
--      shipment_id;
--   2-3. globalcart.place_child_rows(): a key stored under another order ->
--      'order_id_changed'; a row whose order is not in fact_orders waits in staging, 'orphan'
--      after etl_settings 'orphan_timeout'; it counts the new keys among the rows left;
--   4. guarded upsert (updated_at newer); BEFORE UPDATE audits;
--   5. globalcart.finish_source(): advance the 'shipments' watermark, count every claimed row once.
CREATE OR REPLACE FUNCTION globalcart.apply_shipments(p_run_id bigint, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
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
  SELECT count(*) INTO v_claimed FROM pg_temp.gc_claim_shipments;
  IF v_claimed = 0 THEN
    RETURN globalcart.source_stats();
  END IF;

  WITH checked AS (
    SELECT c.*,
           CASE
             WHEN num_nulls(c.shipment_id, c.order_id, c.carrier, c.shipped_ts, c.promised_ts,
                            c.shipment_status, c.updated_at) > 0
             THEN 'missing_required_value: ' || concat_ws(', ',
                    CASE WHEN c.shipment_id IS NULL THEN 'shipment_id' END,
                    CASE WHEN c.order_id IS NULL THEN 'order_id' END,
                    CASE WHEN c.carrier IS NULL THEN 'carrier' END,
                    CASE WHEN c.shipped_ts IS NULL THEN 'shipped_ts' END,
                    CASE WHEN c.promised_ts IS NULL THEN 'promised_ts' END,
                    CASE WHEN c.shipment_status IS NULL THEN 'shipment_status' END,
                    CASE WHEN c.updated_at IS NULL THEN 'updated_at' END)
             WHEN NOT (isfinite(c.shipped_ts) AND isfinite(c.promised_ts) AND coalesce(isfinite(c.delivered_ts), true)
                       AND isfinite(c.updated_at))
             THEN 'invalid_timestamp: ' || concat_ws(', ',
                    CASE WHEN NOT isfinite(c.shipped_ts) THEN 'shipped_ts' END,
                    CASE WHEN NOT isfinite(c.promised_ts) THEN 'promised_ts' END,
                    CASE WHEN NOT isfinite(c.delivered_ts) THEN 'delivered_ts' END,
                    CASE WHEN NOT isfinite(c.updated_at) THEN 'updated_at' END)
             WHEN c.updated_at > p_latest_valid THEN 'future_timestamp: updated_at'
             WHEN c.shipment_status NOT IN ('CREATED', 'IN_TRANSIT', 'DELIVERED', 'DELAYED')
             THEN 'unknown_enum_value: shipment_status'
           END AS reject_reason
    FROM pg_temp.gc_claim_shipments c
  ), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY k.shipment_id ORDER BY k.updated_at DESC, k.stg_id DESC) AS rn,
           max(k.updated_at) OVER (PARTITION BY k.shipment_id) AS newest
    FROM checked k WHERE k.reject_reason IS NULL
  ), rejects AS (
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT p_run_id, 'shipments', k.reject_reason, to_jsonb(k) - 'reject_reason'
    FROM checked k WHERE k.reject_reason IS NOT NULL
    RETURNING 1
  ), winners AS (
    INSERT INTO globalcart.work_shipments
           (shipment_id, order_id, carrier, shipped_ts, promised_ts, delivered_ts, shipment_status,
            sla_breached_flag, updated_at, stg_id, ingested_at, deferrals, deleted)
    SELECT r.shipment_id, r.order_id, r.carrier, r.shipped_ts, r.promised_ts, r.delivered_ts,
           r.shipment_status, r.sla_breached_flag, r.updated_at, r.stg_id, r.ingested_at, r.deferrals, r.deleted
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
    FROM globalcart.place_child_rows('shipments', p_run_id, p_orphan_cutoff) AS h;

  WITH upserted AS (
    INSERT INTO globalcart.fact_shipments AS t
           (shipment_id, order_id, carrier, shipped_ts, promised_ts, delivered_ts, shipment_status, updated_at, order_ts, deleted_at)
    SELECT w.shipment_id, w.order_id, w.carrier, w.shipped_ts, w.promised_ts, w.delivered_ts,
           w.shipment_status, w.updated_at, w.order_ts,
           CASE WHEN w.deleted THEN w.updated_at END
    FROM globalcart.work_shipments w
    ON CONFLICT (order_id, shipment_id, order_ts) DO UPDATE
      SET carrier = EXCLUDED.carrier, shipped_ts = EXCLUDED.shipped_ts, promised_ts = EXCLUDED.promised_ts,
          delivered_ts = EXCLUDED.delivered_ts, shipment_status = EXCLUDED.shipment_status,
          updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at
      WHERE EXCLUDED.updated_at > t.updated_at
    RETURNING t.updated_at
  )
  SELECT count(*), max(u.updated_at) INTO v_changed, v_applied_max FROM upserted u;
  RETURN globalcart.finish_source('shipments', p_run_id, v_applied_max, v_claimed, v_rejected, v_winners,
                                  v_duplicate, v_stale, v_inserted, v_changed - v_inserted,
                                  p_held => v_moved + v_orphans, p_deferred => v_deferred);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_shipments(bigint, timestamptz, timestamptz) IS
  'Refresh step for source shipments: validate, dedup, key check, wait for the order (defer/orphan), guarded upsert (SLA flag computed), watermark.';
