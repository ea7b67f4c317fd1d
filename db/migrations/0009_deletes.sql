-- 0009: deletes (README "Feeding it from your OLTP database"). A source that deletes rows — an OLTP
-- database through logical replication (`globalcart cdc attach`), or any producer — stages a
-- tombstone: the row's last version with the bookkeeping column deleted = true and an updated_at
-- after that version's. The refresh applies it like any version (newest wins, audited), and marks
-- the fact or dimension row deleted (deleted_at = the tombstone's updated_at) instead of removing
-- it; every KPI ignores deleted rows; a later version of the same key (a re-insert in the source)
-- brings the row back (deleted_at NULL again).
--
-- Which sources can delete is a column of the registry: every one but the funnel's events (a
-- clickstream appends; an event is never withdrawn). For each of them the staging table and the
-- refresh's work table get `deleted`, the fact or dimension and its audit table `deleted_at`.
ALTER TABLE globalcart.etl_sources ADD COLUMN deletes boolean NOT NULL DEFAULT true;
UPDATE globalcart.etl_sources SET deletes = false WHERE source_name = 'funnel_events';
COMMENT ON COLUMN globalcart.etl_sources.deletes IS
  'The source may stage tombstones (deleted = true): its rows are then marked deleted_at, never removed.';

DO $$
DECLARE
  v_source record;
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s WHERE s.deletes ORDER BY s.apply_order LOOP
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN deleted boolean NOT NULL DEFAULT false', v_source.staging_table);
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.deleted IS %L', v_source.staging_table,
                   'Bookkeeping: true for a tombstone, the row deleted in the source (its last version, updated_at after it).');
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN deleted boolean NOT NULL DEFAULT false',
                   'work_' || v_source.source_name);
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN deleted_at timestamptz', v_source.fact_table);
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN deleted_at timestamptz', 'audit_' || v_source.fact_table);
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.deleted_at IS %L', v_source.fact_table,
                   'When the row was deleted in its source (the tombstone''s updated_at); NULL: live. KPIs ignore deleted rows.');
  END LOOP;
END;
$$;

-- A change the CDC feed's staging trigger cannot stage (globalcart.install_bronze_trigger) is
-- quarantined before any run sees it: its reject has no run.
ALTER TABLE globalcart.etl_rejects ALTER COLUMN run_id DROP NOT NULL;
COMMENT ON COLUMN globalcart.etl_rejects.run_id IS
  'The run that rejected the row; NULL: rejected on its way into staging (reason unstageable: a CDC change staging cannot hold).';

-- pipeline_health gains the CDC feed of each source (fed_by, feed_problem): its function's
-- result changes, so it and the view are dropped here and created again with the routines.
DROP VIEW IF EXISTS globalcart.pipeline_health;
DROP FUNCTION IF EXISTS globalcart.pipeline_health_rows();

-- The CDC feed's bronze tables (`globalcart cdc attach`): the mirror of each published table of the
-- source, named as the source names it (logical replication matches tables by schema and name),
-- and the source it stages into. Filled by attach, emptied by detach; pipeline_health reads it.
CREATE TABLE globalcart.etl_cdc_tables (
  source_name  text PRIMARY KEY REFERENCES globalcart.etl_sources,
  bronze_table regclass NOT NULL UNIQUE
);
COMMENT ON TABLE globalcart.etl_cdc_tables IS
  'The CDC feed''s bronze tables (globalcart cdc attach): the mirror of a published source table and the source it stages into.';
