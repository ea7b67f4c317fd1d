-- 0008: the refresh's winner tables become tables of the schema (docs/contract.md §2 unchanged).
--
-- Until now every refresh call created its work tables as temporary tables. The tables that a
-- batch is joined with the facts through — the newest valid version of each key of each source,
-- globalcart.work_<source>, and the orders a batch touches, globalcart.work_kpi_orders — are now
-- UNLOGGED tables of the schema, emptied by each call: on one server they cost what a temporary
-- table costs (no WAL), and on Citus `globalcart distribute` distributes them beside the facts
-- (by order_id, colocated with fact_orders; the funnel's by session_id), so that every join of a
-- batch with a fact runs on the shards that hold the batch's keys. The claim tables stay temporary
-- (they are read on the coordinator only).
--
-- Each has the columns of its staging table (an order-grain child's also the order_ts of its
-- order, its partition). Generated from the source registry; a migration that changes a staging
-- table changes its work table too (tests/test_registry.py compares them).
DO $$
DECLARE
  v_source record;
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    EXECUTE format('CREATE UNLOGGED TABLE globalcart.%I (LIKE globalcart.%I INCLUDING COMMENTS)',
                   'work_' || v_source.source_name, v_source.staging_table);
    IF v_source.waits_for_order THEN
      EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN order_ts timestamptz', 'work_' || v_source.source_name);
    END IF;
    EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', 'work_' || v_source.source_name,
                   format('Refresh work table: the newest valid version of each key of source %s in the batch being applied '
                          '(emptied by every refresh call).', v_source.source_name));
  END LOOP;
END;
$$;

CREATE UNLOGGED TABLE globalcart.work_kpi_orders (order_id bigint PRIMARY KEY);
COMMENT ON TABLE globalcart.work_kpi_orders IS
  'Refresh work table: the orders the batch being applied touches, for the KPI summaries (emptied by every refresh call).';

-- Who changed what (audited_by, migration 0004) is the session user that called the refresh. On
-- Citus the audit triggers fire in the workers' sessions, whose session user is the role Citus
-- connects as (the refresh's owner): the refresh publishes its caller with its run id
-- (globalcart.publish_run_id), and the default takes it from there.
DO $$
DECLARE
  v_table text;
BEGIN
  FOR v_table IN
    SELECT c.relname FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname LIKE 'audit\_%'
       AND NOT c.relispartition
  LOOP
    EXECUTE format('ALTER TABLE globalcart.%I ALTER COLUMN audited_by SET DEFAULT '
                   'coalesce(nullif(current_setting(''globalcart.audited_by'', true), ''''), session_user)', v_table);
  END LOOP;
END;
$$;
