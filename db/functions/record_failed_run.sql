-- globalcart.record_failed_run(started_at, error): the end of a refresh call whose work was
-- rolled back (docs/contract.md §5.1). Writes an etl_runs row with status 'failed' and the error,
-- raises a WARNING that says so, and returns the summary
--   {"run_id", "status": "failed", "error": {"sqlstate", "message"[, "detail", "hint"]}, …}
-- with every count 0 and, per source, the backlog still staged (null when even counting
-- staging fails, e.g. behind a lock).
CREATE OR REPLACE FUNCTION globalcart.record_failed_run(p_started timestamptz, p_error jsonb)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_run_id bigint;
  v_sources jsonb;
  v_summary jsonb;
BEGIN
  BEGIN
    SELECT jsonb_object_agg(s.source_name, globalcart.source_stats() || jsonb_build_object('backlog', s.staged))
      INTO v_sources
      FROM globalcart.staged_rows() AS s;
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    SELECT jsonb_object_agg(s.source_name, globalcart.source_stats() || '{"backlog": null}'::jsonb) INTO v_sources
      FROM globalcart.etl_sources s;
  END;
  INSERT INTO globalcart.etl_runs (started_at, finished_at, status, error)
  VALUES (p_started, clock_timestamp(), 'failed', p_error)
  RETURNING run_id INTO v_run_id;
  v_summary := globalcart.refresh_summary(v_run_id, 'failed', p_started, v_sources,
                                          jsonb_build_object('error', p_error));
  UPDATE globalcart.etl_runs
     SET finished_at = (v_summary ->> 'finished_at')::timestamptz, stats = v_summary
   WHERE run_id = v_run_id;
  RAISE WARNING 'globalcart.run_incremental_refresh: run % failed and changed nothing: % %',
                v_run_id, p_error ->> 'sqlstate', p_error ->> 'message'
    USING HINT = 'The next call retries the same rows; globalcart.pipeline_health shows the last error.';
  RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION globalcart.record_failed_run(timestamptz, jsonb) IS
  'Records a refresh call that was rolled back (etl_runs status failed, with the error) and returns its summary.';
