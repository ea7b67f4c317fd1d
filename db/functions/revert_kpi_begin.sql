-- globalcart.revert_kpi_begin(): the KPI summaries' side of globalcart.revert_run, before its rows
-- are written back: the orders and sessions whose keys the run touched (pg_temp.gc_revert_keys_<table>
-- of globalcart.revert_find_conflicts) go into the refresh's work tables, and the orders' old
-- contribution is read (globalcart.kpi_order_contributions(-1)); globalcart.kpi_summaries_apply(true)
-- then takes it out, adds the new one and recomputes the sessions from their events.
CREATE OR REPLACE FUNCTION globalcart.revert_kpi_begin()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- It writes through EXECUTE, which plpgsql_check cannot see into, so its volatility hint does not
-- apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  t record;
BEGIN
  -- the KPI summaries: the touched orders' old contribution out; their sessions are recomputed after
  FOR t IN SELECT * FROM globalcart.history_tables() h WHERE h.order_grain OR h.table_name = 'fact_funnel_events' LOOP
    IF t.order_grain THEN
      EXECUTE format('INSERT INTO globalcart.work_kpi_orders (order_id) SELECT DISTINCT k.order_id FROM pg_temp.%I k '
                     'ON CONFLICT DO NOTHING', 'gc_revert_keys_' || t.table_name);
    ELSE
      EXECUTE format('INSERT INTO pg_temp.gc_kpi_sessions (session_id) SELECT DISTINCT k.session_id FROM pg_temp.%I k '
                     'ON CONFLICT DO NOTHING', 'gc_revert_keys_' || t.table_name);
    END IF;
  END LOOP;
  BEGIN
    ANALYZE globalcart.work_kpi_orders;  -- (the planner joins it with the facts: its size)
  EXCEPTION WHEN active_sql_transaction THEN
    NULL;  -- Citus: this transaction read the facts its shards sit beside over several connections
  END;
  PERFORM globalcart.kpi_order_contributions(-1);
END;
$$;
COMMENT ON FUNCTION globalcart.revert_kpi_begin() IS
  'revert_run, step 4 (first half): the touched orders and sessions into the work tables, the orders'' old KPI contribution read.';
