-- globalcart.claim_bound(staging_table, max_rows): the greatest stg_id the refresh's claim takes
-- from one staging table, so that it takes at most max_rows rows, lowest stg_id (earliest staged)
-- first: the greatest stg_id staged when the table cannot hold more than max_rows rows (two index
-- probes: max - min < max_rows), else the max_rows-th lowest (an index scan of max_rows entries).
-- NULL for an empty table. STABLE, so that inside the claim's DELETE it reads that statement's
-- snapshot: one snapshot still decides the whole batch. The table must be a staging table of
-- globalcart.etl_sources (GC006 otherwise), never a caller's text.
CREATE OR REPLACE FUNCTION globalcart.claim_bound(p_staging_table text, p_max_rows bigint)
  RETURNS bigint
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_low bigint;
  v_high bigint;
  v_bound bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM globalcart.etl_sources s WHERE s.staging_table = p_staging_table) THEN
    RAISE EXCEPTION 'claim_bound: % is not a staging table of globalcart.etl_sources', quote_literal(p_staging_table)
      USING ERRCODE = 'GC006';
  END IF;
  EXECUTE format('SELECT min(s.stg_id), max(s.stg_id) FROM globalcart.%I s', p_staging_table) INTO v_low, v_high;
  IF v_high - v_low < p_max_rows THEN
    RETURN v_high;
  END IF;
  EXECUTE format('SELECT s.stg_id FROM globalcart.%I s ORDER BY s.stg_id OFFSET $1 LIMIT 1', p_staging_table)
    INTO v_bound USING p_max_rows - 1;
  RETURN v_bound;
END;
$$;
COMMENT ON FUNCTION globalcart.claim_bound(text, bigint) IS
  'Greatest stg_id a claim takes from a staging table so that it takes at most max_rows rows, earliest staged first.';
