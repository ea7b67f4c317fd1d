-- globalcart.purge_history(): retention (docs/contract.md §5.5). Deletes etl_runs, etl_rejects and
-- kpi_snapshots rows older than etl_settings 'history_retention' (default 90 days) — with the
-- attribution only those needed (docs/contract.md §8) —, and,
-- when 'audit_retention' is an interval (default 'none': kept for ever), the rows of every
-- audit table (globalcart.audit_*, read from the catalog) audited longer ago than that; and,
-- when 'fact_retention' is an interval (default 'none'), drops the monthly partitions of the
-- facts that lie wholly before now() minus it, adjusting the KPI summaries
-- (globalcart.drop_old_fact_months). It also makes sure the audit tables have this month's and
-- next month's partitions.
-- Returns how many rows it deleted, per table. schedule_incremental_refresh() registers it
-- as a daily pg_cron job.
CREATE OR REPLACE FUNCTION globalcart.purge_history()
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
-- It deletes through EXECUTE (one statement per audit table), which plpgsql_check cannot see
-- into:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_history_cutoff timestamptz := now() - globalcart.etl_setting_interval('history_retention', interval '90 days');
  v_audit_setting text := (SELECT s.value FROM globalcart.etl_settings s WHERE s.name = 'audit_retention');
  v_audit_cutoff timestamptz;
  v_fact_setting text := (SELECT s.value FROM globalcart.etl_settings s WHERE s.name = 'fact_retention');
  v_fact_cutoff timestamptz;
  v_table text;
  v_parent text;
  v_deleted bigint;
  v_result jsonb;
BEGIN
  PERFORM globalcart.citus_explain_guard();  -- (auto_explain on a Citus coordinator)
  IF v_audit_setting IS NOT NULL AND lower(btrim(v_audit_setting)) <> 'none' THEN
    v_audit_cutoff := now() - globalcart.etl_setting_interval('audit_retention', NULL);
  END IF;
  IF v_fact_setting IS NOT NULL AND lower(btrim(v_fact_setting)) <> 'none' THEN
    v_fact_cutoff := now() - globalcart.etl_setting_interval('fact_retention', NULL);
  END IF;
  PERFORM globalcart.add_audit_partitions(now());  -- this month's and the next, where missing

  DELETE FROM globalcart.etl_runs r WHERE r.started_at < v_history_cutoff;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  v_result := jsonb_build_object('etl_runs', v_deleted);
  DELETE FROM globalcart.etl_rejects j WHERE j.rejected_at < v_history_cutoff;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  v_result := v_result || jsonb_build_object('etl_rejects', v_deleted);
  DELETE FROM globalcart.kpi_snapshots k WHERE k.taken_at < v_history_cutoff;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  v_result := v_result || jsonb_build_object('kpi_snapshots', v_deleted);
  -- … and their attribution (docs/contract.md §8): the partial state of the snapshots and runs gone,
  -- and the running totals of the causes no explain_kpis can reach any more — those before each
  -- cause's last row at or before the first run a remaining snapshot or run still needs (that row
  -- is what the later ones add to)
  DELETE FROM globalcart.kpi_snapshot_sums s
   WHERE NOT EXISTS (SELECT 1 FROM globalcart.kpi_snapshots k WHERE k.snapshot_id = s.snapshot_id);
  DELETE FROM globalcart.kpi_run_sums s WHERE NOT EXISTS (SELECT 1 FROM globalcart.etl_runs r WHERE r.run_id = s.run_id);
  DELETE FROM globalcart.kpi_attribution a
   WHERE a.run_id < (SELECT max(b.run_id) FROM globalcart.kpi_attribution b
                      WHERE b.cause = a.cause
                        AND b.run_id <= least((SELECT min(s.last_run_id) FROM globalcart.kpi_snapshot_sums s),
                                              (SELECT min(r.run_id) FROM globalcart.etl_runs r)));
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  v_result := v_result || jsonb_build_object('kpi_attribution', v_deleted);

  IF v_audit_cutoff IS NOT NULL THEN
    -- every table that holds audit rows (each monthly partition of an audit table), counted under
    -- its own name and added up under its audit table's
    FOR v_table, v_parent IN
      SELECT c.relname::text, coalesce(p.relname, c.relname)::text
        FROM pg_catalog.pg_class c
        LEFT JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
       WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'audit\_%'
       ORDER BY 1
    LOOP
      EXECUTE format('DELETE FROM globalcart.%I a WHERE a.audited_at < $1', v_table) USING v_audit_cutoff;
      GET DIAGNOSTICS v_deleted = ROW_COUNT;
      v_result := v_result || jsonb_build_object(v_table, v_deleted);
      IF v_parent <> v_table THEN
        v_result := v_result || jsonb_build_object(v_parent, coalesce((v_result ->> v_parent)::bigint, 0) + v_deleted);
      END IF;
    END LOOP;
  END IF;
  IF v_fact_cutoff IS NOT NULL THEN
    -- whole months of facts, under the refresh's lock (the summaries change with them)
    PERFORM set_config('lock_timeout',
                       (extract(epoch FROM globalcart.etl_setting_interval('lock_timeout', interval '10 seconds')) * 1000)
                         ::bigint::text, true);
    LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE;
    v_result := v_result || jsonb_build_object('fact_partitions_dropped',
                                               to_jsonb(globalcart.drop_old_fact_months(v_fact_cutoff)));
  END IF;
  RETURN v_result;
END;
$$;
COMMENT ON FUNCTION globalcart.purge_history() IS
  'Deletes etl_runs, etl_rejects and kpi_snapshots rows older than history_retention, and audit rows older than audit_retention (none: kept); returns the counts.';
