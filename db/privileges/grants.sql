-- The privileges of docs/contract.md §6, exactly, run by `migrate` after the routine files on every
-- run, so that they cover every object there is — generated from the catalog (dim_*, fact_*,
-- audit_* tables) and the source registry (the staging tables and their business columns), never
-- a hand list. Each group role is first stripped of everything in the schema, then given its
-- column of the table; PUBLIC gets nothing. Roles are given to people with
-- GRANT globalcart_reader TO alice (or `globalcart grant alice --role reader`).
--
-- Every group role: USAGE on the schema, SELECT on the registry of sources (etl_sources).
--   globalcart_loader     INSERT on the business columns of every stg_* table and on `deleted`
--                         (a tombstone, migration 0009) (COPY with the business column list
--                         works, naming another bookkeeping column does not);
--                         SELECT on etl_watermarks
--   globalcart_refresher  run_incremental_refresh(), drain_staging(), refresh_for(),
--                         snapshot_kpis(), purge_history(), rebuild_kpi_summaries();
--                         pipeline_health; what the scheduled
--                         jobs' commands call (job_statement_timeout())
--   globalcart_reader     SELECT on dimensions, facts, kpi_* (snapshots, summaries, kpi_daily),
--                         pipeline_health; kpi_values(), kpi_values_as_of(), compare_kpis(),
--                         explain_kpis(), and the KPI rules those inline (kpi_order_contribution, …)
--   globalcart_auditor    globalcart_reader's (it is a member), plus SELECT on audit tables and
--                         etl_rejects, and the history read from them: <table>_as_of() of each
--                         table with history, order_timeline()
-- revert_run() is the owner's alone (it rewrites facts).
DO $$
DECLARE
  v_group text;
  v_name text;
  v_source globalcart.etl_sources;
  v_columns text;
BEGIN
  REVOKE ALL ON SCHEMA globalcart FROM PUBLIC;
  REVOKE ALL ON ALL TABLES IN SCHEMA globalcart FROM PUBLIC;
  REVOKE ALL ON ALL SEQUENCES IN SCHEMA globalcart FROM PUBLIC;
  REVOKE ALL ON ALL ROUTINES IN SCHEMA globalcart FROM PUBLIC;
  -- routines created later by the owner: no EXECUTE for PUBLIC either
  ALTER DEFAULT PRIVILEGES FOR ROLE globalcart_owner REVOKE EXECUTE ON ROUTINES FROM PUBLIC;
  -- the refresh creates its temporary work tables as the owner, also where PUBLIC lost TEMPORARY
  EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO globalcart_owner', current_database());

  FOREACH v_group IN ARRAY ARRAY['globalcart_loader', 'globalcart_refresher', 'globalcart_reader',
                                 'globalcart_auditor']
  LOOP
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA globalcart FROM %I', v_group);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA globalcart FROM %I', v_group);
    EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA globalcart FROM %I', v_group);
    EXECUTE format('GRANT USAGE ON SCHEMA globalcart TO %I', v_group);
    -- the registry of sources: which tables there are (the driver reads it), no data
    EXECUTE format('GRANT SELECT ON globalcart.etl_sources TO %I', v_group);
  END LOOP;

  -- loader: the business columns of each staging table (those its fact or dimension has too)
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_attribute f ON f.attrelid = format('globalcart.%I', v_source.fact_table)::regclass
                                    AND f.attname = a.attname AND f.attnum > 0 AND NOT f.attisdropped
     WHERE a.attrelid = format('globalcart.%I', v_source.staging_table)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_source.deletes THEN  -- and the tombstone's flag (migration 0009): a producer may send a delete
      v_columns := v_columns || ', deleted';
    END IF;
    EXECUTE format('GRANT INSERT (%s) ON globalcart.%I TO globalcart_loader', v_columns, v_source.staging_table);
  END LOOP;
  GRANT SELECT ON globalcart.etl_watermarks TO globalcart_loader;

  -- refresher: the calls, and health
  GRANT EXECUTE ON FUNCTION globalcart.run_incremental_refresh() TO globalcart_refresher;
  GRANT EXECUTE ON PROCEDURE globalcart.drain_staging() TO globalcart_refresher;
  GRANT EXECUTE ON PROCEDURE globalcart.refresh_for(interval, interval) TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.follow_loop_begin() TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.follow_loop_beat() TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.follow_loop_end() TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.snapshot_kpis(text) TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.purge_history() TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.rebuild_kpi_summaries() TO globalcart_refresher;
  GRANT EXECUTE ON FUNCTION globalcart.job_statement_timeout() TO globalcart_refresher;

  -- health: refreshers and readers
  GRANT SELECT ON globalcart.pipeline_health TO globalcart_refresher, globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.pipeline_health_rows() TO globalcart_refresher, globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.cdc_feed() TO globalcart_refresher, globalcart_reader;

  -- reader: dimensions, facts, snapshots, the KPI functions
  FOR v_name IN
    SELECT c.relname FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
       AND NOT c.relispartition  -- read through the parent, whose privileges apply
       AND (c.relname LIKE 'dim\_%' OR c.relname LIKE 'fact\_%' OR c.relname LIKE 'kpi\_%')
  LOOP
    EXECUTE format('GRANT SELECT ON globalcart.%I TO globalcart_reader', v_name);
  END LOOP;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_values(timestamptz, timestamptz, char, text) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_from_sums(bigint, numeric, numeric, bigint, bigint, bigint, numeric, bigint,
                                                     bigint, bigint, bigint, bigint, bigint, bigint, bigint, numeric,
                                                     numeric, boolean) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_order_contribution(text, boolean, numeric, numeric, bigint, numeric, bigint,
                                                              bigint, bigint, bigint) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_session_contribution(boolean, boolean, boolean, numeric) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_order_ratios(bigint, numeric, bigint, bigint, bigint, bigint, bigint, bigint)
    TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_values_as_of(timestamptz) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.latest_snapshot(text, text, text) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.compare_kpis(text, text) TO globalcart_reader;
  -- why the KPIs moved (docs/contract.md §8), and what it and kpi_values are made of
  GRANT EXECUTE ON FUNCTION globalcart.explain_kpis(text, text) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.explain_kpis(bigint) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.explain_kpis_since(text) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_attribution_window(bigint, bigint) TO globalcart_reader;
  -- the live dashboard (docs/dashboard.md): the runs, their counts and rejects by reason, no record
  GRANT EXECUTE ON FUNCTION globalcart.dashboard_runs(integer, bigint) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.dashboard_run(bigint) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.dashboard_follow_loop() TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_explain(globalcart.kpi_partial, globalcart.kpi_partial, text[],
                                                   globalcart.kpi_partial[]) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_sums(timestamptz, timestamptz, char, text) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_values_of(globalcart.kpi_partial, boolean) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_parts(globalcart.kpi_partial) TO globalcart_reader;
  GRANT EXECUTE ON FUNCTION globalcart.kpi_partial_add(globalcart.kpi_partial, globalcart.kpi_partial, integer)
    TO globalcart_reader;

  -- auditor: the old versions and the quarantine (they hold personal data)
  FOR v_name IN
    SELECT c.relname FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname LIKE 'audit\_%'
  LOOP
    EXECUTE format('GRANT SELECT ON globalcart.%I TO globalcart_auditor', v_name);
  END LOOP;
  GRANT SELECT ON globalcart.etl_rejects TO globalcart_auditor;
  -- … and the history read from them (the as-of functions run with the caller's rights)
  FOR v_name IN SELECT h.table_name FROM globalcart.history_tables() h LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION globalcart.%I(timestamptz) TO globalcart_auditor', v_name || '_as_of');
  END LOOP;
  GRANT EXECUTE ON FUNCTION globalcart.history_run_at(timestamptz) TO globalcart_auditor;
  GRANT EXECUTE ON FUNCTION globalcart.order_timeline(bigint) TO globalcart_auditor;
END;
$$;
