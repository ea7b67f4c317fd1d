-- globalcart.finish_source(source, run_id, applied_max, claimed, rejected, winners, duplicate, stale,
-- inserted, updated, held, deferred): the tail every apply_<source>() shares — it advances the
-- source's watermark to the newest updated_at applied and returns the source's counts
-- (docs/contract.md §2.11), in which every claimed row is counted once:
--   claimed   the rows the refresh claimed from staging;
--   rejected  those validation rejected, plus `held`: winners rejected after dedup (a child moved to
--             another order or orphaned, an order whose status would go backwards);
--   duplicate / stale  the versions dedup dropped (the same updated_at as the winner / older);
--   deferred  winners that went back to staging to wait for their order;
--   inserted / updated  winners the upsert wrote; a winner it did not write (not newer than the stored
--             version) is stale too.
CREATE OR REPLACE FUNCTION globalcart.finish_source(
    p_source text, p_run_id bigint, p_applied_max timestamptz,
    p_claimed bigint, p_rejected bigint, p_winners bigint, p_duplicate bigint, p_stale bigint,
    p_inserted bigint, p_updated bigint, p_held bigint DEFAULT 0, p_deferred bigint DEFAULT 0)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM globalcart.advance_watermark(p_source, p_applied_max, p_run_id);
  RETURN globalcart.source_stats(
    p_claimed => p_claimed, p_inserted => p_inserted, p_updated => p_updated,
    p_stale => p_stale + (p_winners - p_held - p_deferred - p_inserted - p_updated),
    p_duplicate => p_duplicate, p_rejected => p_rejected + p_held, p_deferred => p_deferred);
END;
$$;
COMMENT ON FUNCTION globalcart.finish_source(text, bigint, timestamptz, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint) IS
  'The shared tail of every apply_<source>(): advances the source''s watermark and returns its counts, each claimed row counted once.';
