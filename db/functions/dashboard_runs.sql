-- globalcart.dashboard_runs(limit, run_id): the latest runs (or the one run_id), newest first, for readers (the live dashboard,
-- docs/dashboard.md): when, status, counts, the run a revert undid, the error of a failed one, and its
-- rejects counted by reason (the reason's code, "future_timestamp" of "future_timestamp: updated_at").
-- No rejected record: those hold personal data, the auditor's (docs/contract.md §6). Runs with the
-- owner's rights: readers may not read etl_runs or etl_rejects themselves. At most 200 runs.
CREATE OR REPLACE FUNCTION globalcart.dashboard_runs(p_limit integer DEFAULT 20, p_run_id bigint DEFAULT NULL)
  RETURNS TABLE (run_id bigint, started_at timestamptz, finished_at timestamptz, status text, reverts_run_id bigint,
                 rows_claimed bigint, rows_applied bigint, rows_rejected bigint, rows_deferred bigint,
                 rejects jsonb, error text)
  LANGUAGE sql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.run_id, r.started_at, r.finished_at, r.status,
         r.reverts_run_id, r.rows_claimed, r.rows_applied, r.rows_rejected, r.rows_deferred,
         coalesce((SELECT jsonb_object_agg(x.reason, x.n)
                     FROM (SELECT split_part(j.reason, ':', 1) AS reason, count(*) AS n
                             FROM globalcart.etl_rejects j WHERE j.run_id = r.run_id GROUP BY 1) AS x), '{}'::jsonb),
         r.error ->> 'message'
    FROM globalcart.etl_runs r
   WHERE p_run_id IS NULL OR r.run_id = p_run_id
   ORDER BY r.run_id DESC
   LIMIT least(greatest(coalesce(p_limit, 20), 1), 200)
$$;
COMMENT ON FUNCTION globalcart.dashboard_runs(integer, bigint) IS
  'The latest runs with their counts and rejects by reason, for readers (no rejected record).';
