-- globalcart.create_work_tables(): the refresh's scratch space, temporary tables emptied at
-- commit. For each source of globalcart.etl_sources: gc_claim_<source>, the rows one refresh
-- took out of staging,
-- and gc_win_<source>, the newest valid version of each key. Both have exactly the
-- columns of the staging table. A session creates them at its first refresh that has
-- something to do and reuses them after (they are empty again at every commit).
CREATE OR REPLACE FUNCTION globalcart.create_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_source globalcart.etl_sources;
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    IF to_regclass('pg_temp.gc_claim_' || v_source.source_name) IS NULL THEN
      EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DELETE ROWS',
                     'gc_claim_' || v_source.source_name, v_source.staging_table);
      EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DELETE ROWS',
                     'gc_win_' || v_source.source_name, v_source.staging_table);
    ELSE  -- empty, unless a refresh already ran in this same transaction
      EXECUTE format('DELETE FROM pg_temp.%I', 'gc_claim_' || v_source.source_name);
      EXECUTE format('DELETE FROM pg_temp.%I', 'gc_win_' || v_source.source_name);
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION globalcart.create_work_tables() IS
  'Creates (or empties) the temporary claim and winner tables of a refresh; they are emptied at every commit.';
