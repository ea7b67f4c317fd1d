-- globalcart.advance_watermark(source, ts, run_id): moves a source's watermark forward to
-- ts (the greatest updated_at a refresh applied); never backwards, a NULL ts changes nothing.
CREATE OR REPLACE FUNCTION globalcart.advance_watermark(p_source text, p_applied_max timestamptz, p_run_id bigint)
  RETURNS void
  LANGUAGE sql
  SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO globalcart.etl_watermarks AS w (source_name, watermark_ts, last_run_id, updated_at)
  SELECT p_source, p_applied_max, p_run_id, now()
  WHERE p_applied_max IS NOT NULL
  ON CONFLICT (source_name) DO UPDATE
    SET watermark_ts = EXCLUDED.watermark_ts, last_run_id = EXCLUDED.last_run_id, updated_at = EXCLUDED.updated_at
    WHERE w.watermark_ts IS NULL OR EXCLUDED.watermark_ts > w.watermark_ts
$$;
COMMENT ON FUNCTION globalcart.advance_watermark(text, timestamptz, bigint) IS
  'Moves the watermark of a source forward (never backwards) to the greatest updated_at just applied.';
