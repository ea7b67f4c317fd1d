-- globalcart.drop_work_tables(): at the end of a refresh call (or a revert's, or retention's),
-- drops its temporary tables, so that a second call in the same transaction creates its own (they
-- go at commit anyway), and truncates each work table (globalcart.work_<source>, work_kpi_orders)
-- that this call filled with more than 10,000 rows. Emptied by DELETE at the next call's start, such
-- a table would keep its pages, and every later call would read them all — and plan its joins for a
-- table of that size — until autovacuum came by: on Citus, where the size check at the start
-- (globalcart.create_work_tables) sees only the coordinator's empty shell and never the shards, a
-- one-order refresh right after a seed took 2.9 s instead of 0.3 s. The claims, the batch's size,
-- are the temporary tables: counting them reads nothing remote.
CREATE OR REPLACE FUNCTION globalcart.drop_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_source globalcart.etl_sources;
  v_claimed bigint;
  v_touched bigint := 0::bigint;  -- order-grain rows claimed: at most that many orders in work_kpi_orders
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    EXECUTE format('SELECT count(*) FROM pg_temp.%I', 'gc_claim_' || v_source.source_name) INTO v_claimed;
    IF v_claimed > 10000 THEN
      EXECUTE format('TRUNCATE globalcart.%I', 'work_' || v_source.source_name);
    END IF;
    IF v_source.waits_for_order OR v_source.source_name = 'orders' THEN
      v_touched := v_touched + v_claimed;
    END IF;
    EXECUTE format('DROP TABLE pg_temp.%I', 'gc_claim_' || v_source.source_name);
  END LOOP;
  IF v_touched > 10000 THEN
    TRUNCATE globalcart.work_kpi_orders;
  END IF;
  DROP TABLE pg_temp.gc_kpi_sessions, pg_temp.gc_kpi_session_moves, pg_temp.gc_kpi_order_delta,
                  pg_temp.gc_kpi_order_states;
END;
$$;
COMMENT ON FUNCTION globalcart.drop_work_tables() IS
  'Drops the temporary claim tables at the end of a refresh call and truncates the work tables a large batch filled (the others are emptied by the next call).';
