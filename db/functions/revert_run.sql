-- globalcart.revert_run(run_id): undoes what one run changed in the facts and dimensions
-- (docs/contract.md §7), as a new run — audited like any other, so that it can itself be reverted.
--   1. Takes the refresh's lock (waiting up to lock_timeout, 10 s, for a running refresh), then
--      checks the run (globalcart.revert_check_run): it must exist, have finished 'ok' (a failed
--      run changed nothing) and not be reverted now (a revert of it that has not itself been
--      reverted) — else GC010, no change.
--   2. (globalcart.revert_find_conflicts) For every table with history (globalcart.history_tables(): each fact and dimension with an
--      audit table), the keys the run touched: rows it wrote (loaded_run_id) and versions it
--      replaced or deleted (audit rows with its audit_run_id). Where a key no longer holds what
--      the run left — a later run, or a change outside any run, changed it since and that change
--      stands — it refuses with GC011 naming those runs: revert them first, newest first. (A
--      later change that was itself reverted leaves the run's version in place: no refusal.) So
--      does an order a later run turned RETURNED while a return of this run is taken away.
--   3. Opens its own run (etl_runs.reverts_run_id = the run) and (globalcart.revert_restore_rows),
--      for each key, from the version
--      it had before the run (the first audit row the run wrote for it):
--        - a row the run inserted (no version before) is deleted — audited, so it can come back;
--        - a row it updated gets its previous version back (an audited update: an order that
--          moved to another month moves back; one its returns turned RETURNED is DELIVERED or
--          COMPLETED again, since that is the version the run replaced);
--        - a row it deleted (a revert run's work) is inserted again.
--      Rows written back carry the new run's id as loaded_run_id: it wrote their current version.
--   4. The KPI summaries follow: the touched orders' contribution out before
--      (globalcart.revert_kpi_begin), in after; the touched sessions are recomputed from their
--      events (globalcart.kpi_summaries_apply); the change is recorded as the cause 'reverts'
--      (globalcart.kpi_attribution_record).
-- Watermarks are not moved backwards, rejects stay, staging is not touched. Returns the summary of
-- the new run — {"run_id", "status", "reverted_run_id", "rows_changed", "tables": {table:
-- {"deleted", "restored", "reinserted"}}, …} — also stored as its etl_runs.stats. Each table is
-- read once (the rows a run inserted carry no index); audit rows through a BRIN index on
-- audit_run_id and the key indexes.
CREATE OR REPLACE FUNCTION globalcart.revert_run(run_id bigint)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET jit = off
  SET lock_timeout = '10s'
  SET client_min_messages = warning  -- (not the NOTICEs of its DROP TABLE IF EXISTS)
AS $$
DECLARE
  v_target globalcart.etl_runs;
  v_run_id bigint;
  v_started timestamptz := clock_timestamp();
  v_restored record;
  t record;
  v_summary jsonb;
BEGIN
  PERFORM globalcart.citus_explain_guard();  -- (auto_explain on a Citus coordinator)
  BEGIN
    LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE;
  EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'revert_run: a refresh has been running for longer than lock_timeout (10 s)'
      USING ERRCODE = 'GC010', HINT = 'Try again when it has finished (globalcart.pipeline_health shows the runs).';
  END;
  v_target := globalcart.revert_check_run(revert_run.run_id);
  PERFORM globalcart.revert_find_conflicts(v_target.run_id);

  INSERT INTO globalcart.etl_runs (started_at, status, reverts_run_id) VALUES (v_started, 'running', v_target.run_id)
  RETURNING etl_runs.run_id INTO v_run_id;
  PERFORM globalcart.publish_run_id(v_run_id);
  PERFORM globalcart.create_work_tables();
  PERFORM globalcart.revert_kpi_begin();
  SELECT * INTO v_restored FROM globalcart.revert_restore_rows(v_target.run_id);
  PERFORM globalcart.kpi_summaries_apply(true);
  PERFORM globalcart.kpi_attribution_record(v_run_id, p_revert => true);
  PERFORM globalcart.drop_work_tables();
  FOR t IN SELECT * FROM globalcart.history_tables() LOOP
    EXECUTE format('DROP TABLE pg_temp.%I, pg_temp.%I', 'gc_revert_keys_' || t.table_name,
                   'gc_revert_prev_' || t.table_name);
  END LOOP;

  v_summary := jsonb_build_object('run_id', v_run_id, 'status', 'ok', 'reverted_run_id', v_target.run_id,
                                  'started_at', v_started, 'finished_at', clock_timestamp(),
                                  'rows_changed', v_restored.rows_changed, 'tables', v_restored.tables);
  UPDATE globalcart.etl_runs r
     SET status = 'ok', finished_at = (v_summary ->> 'finished_at')::timestamptz, stats = v_summary,
         rows_applied = v_restored.rows_changed
   WHERE r.run_id = v_run_id;
  RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION globalcart.revert_run(bigint) IS
  'Undoes one run (docs/contract.md §7) as a new audited run: rows it inserted deleted, rows it updated or deleted restored; refuses (GC011) when later runs changed the same rows.';
