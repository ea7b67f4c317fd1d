-- globalcart.create_work_tables(): the refresh's scratch space, created afresh by every call
-- that has something to do, and dropped by it at its end (and at commit, whatever happens). For
-- each source of globalcart.etl_sources: gc_claim_<source>, the rows the call took out of
-- staging, and gc_win_<source>, the newest valid version of each key; both have exactly the
-- columns of the staging table (an order-grain child's winners also the order_ts of their order,
-- their partition). For the KPI summaries (globalcart.kpi_summaries_begin/_apply):
-- gc_kpi_orders and gc_kpi_sessions, the orders and sessions the batch touches,
-- gc_kpi_order_delta, the orders' contributions to kpi_order_summary (old ones negated, new
-- ones), and gc_kpi_session_new, the sessions' new state.
--
-- Never reused: the refresh runs with its owner's rights, so a table the caller prepared under
-- one of these names (with a trigger, say) must not be written by it. Such a table makes the
-- call fail, recorded, with a hint to drop it (SQLSTATE 42P07).
CREATE OR REPLACE FUNCTION globalcart.create_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_source globalcart.etl_sources;
  v_table text;
BEGIN
  FOR v_table IN
    SELECT t.name
      FROM globalcart.etl_sources s
     CROSS JOIN LATERAL (VALUES ('gc_claim_' || s.source_name), ('gc_win_' || s.source_name)) AS t(name)
    UNION ALL
    SELECT t.name FROM unnest(ARRAY['gc_kpi_orders', 'gc_kpi_sessions', 'gc_kpi_session_new', 'gc_kpi_order_delta']) AS t(name)
  LOOP
    IF to_regclass(format('pg_temp.%I', v_table)) IS NOT NULL THEN
      RAISE EXCEPTION 'a temporary table pg_temp.% already exists in this session', v_table
        USING ERRCODE = 'duplicate_table',
              HINT = format('The refresh creates its work tables itself: DROP TABLE pg_temp.%I; then call it again.',
                            v_table);
    END IF;
  END LOOP;
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DROP',
                   'gc_claim_' || v_source.source_name, v_source.staging_table);
    EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DROP',
                   'gc_win_' || v_source.source_name, v_source.staging_table);
    IF v_source.waits_for_order THEN  -- the order's order_ts, the row's partition (hold_early_children)
      EXECUTE format('ALTER TABLE pg_temp.%I ADD COLUMN order_ts timestamptz', 'gc_win_' || v_source.source_name);
    END IF;
  END LOOP;
  CREATE TEMPORARY TABLE gc_kpi_orders (order_id bigint PRIMARY KEY) ON COMMIT DROP;
  CREATE TEMPORARY TABLE gc_kpi_sessions (session_id text PRIMARY KEY) ON COMMIT DROP;
  CREATE TEMPORARY TABLE gc_kpi_session_new (LIKE globalcart.kpi_session_state INCLUDING INDEXES) ON COMMIT DROP;
  CREATE TEMPORARY TABLE gc_kpi_order_delta (LIKE globalcart.kpi_order_summary) ON COMMIT DROP;
END;
$$;
COMMENT ON FUNCTION globalcart.create_work_tables() IS
  'Creates the temporary claim and winner tables of one refresh call, afresh (never reusing a table of the same name).';
