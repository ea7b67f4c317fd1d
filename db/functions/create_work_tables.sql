-- globalcart.create_work_tables(): the refresh's scratch space, temporary tables emptied at
-- commit. For each source: gc_claim_<source>, the rows one refresh took out of staging,
-- and gc_win_<source>, the newest valid version of each key. Both have exactly the
-- columns of the staging table. A session creates them at its first refresh that has
-- something to do and reuses them after (they are empty again at every commit).
CREATE OR REPLACE FUNCTION globalcart.create_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_source text;
BEGIN
  FOREACH v_source IN ARRAY ARRAY['customers', 'products', 'orders', 'order_items',
                                  'payments', 'shipments', 'returns', 'funnel_events']
  LOOP
    IF to_regclass('pg_temp.gc_claim_' || v_source) IS NULL THEN
      EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DELETE ROWS',
                     'gc_claim_' || v_source, 'stg_' || v_source);
      EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DELETE ROWS',
                     'gc_win_' || v_source, 'stg_' || v_source);
    ELSE  -- empty, unless a refresh already ran in this same transaction
      EXECUTE format('DELETE FROM pg_temp.%I', 'gc_claim_' || v_source);
      EXECUTE format('DELETE FROM pg_temp.%I', 'gc_win_' || v_source);
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION globalcart.create_work_tables() IS
  'Creates (or empties) the temporary claim and winner tables of a refresh; they are emptied at every commit.';
