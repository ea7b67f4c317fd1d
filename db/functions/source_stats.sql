-- globalcart.source_stats(...): the per-source counts of a refresh summary (docs/contract.md §2.11),
-- one jsonb object with every count present (0 where nothing happened).
CREATE OR REPLACE FUNCTION globalcart.source_stats(
    p_claimed bigint DEFAULT 0, p_inserted bigint DEFAULT 0, p_updated bigint DEFAULT 0,
    p_stale bigint DEFAULT 0, p_duplicate bigint DEFAULT 0, p_rejected bigint DEFAULT 0,
    p_deferred bigint DEFAULT 0)
  RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'claimed', p_claimed, 'inserted', p_inserted, 'updated', p_updated, 'stale', p_stale,
    'duplicate', p_duplicate, 'rejected', p_rejected, 'deferred', p_deferred)
$$;
COMMENT ON FUNCTION globalcart.source_stats(bigint, bigint, bigint, bigint, bigint, bigint, bigint) IS
  'The counts of one source in a refresh summary: claimed = inserted + updated + stale + duplicate + rejected + deferred.';
