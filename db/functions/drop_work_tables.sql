-- globalcart.drop_work_tables(): drops the temporary tables of one refresh call at its end, so
-- that a second call in the same transaction creates its own (they go at commit anyway).
CREATE OR REPLACE FUNCTION globalcart.drop_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_source globalcart.etl_sources;
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    EXECUTE format('DROP TABLE pg_temp.%I', 'gc_claim_' || v_source.source_name);
  END LOOP;
  DROP TABLE pg_temp.gc_kpi_sessions, pg_temp.gc_kpi_session_moves, pg_temp.gc_kpi_order_delta,
                  pg_temp.gc_kpi_order_states;
END;
$$;
COMMENT ON FUNCTION globalcart.drop_work_tables() IS
  'Drops the temporary claim tables at the end of a refresh call (the work tables are emptied by the next).';
