-- globalcart.history_run_at(at): the last run that had finished by `at` (0 when none had) — the
-- warehouse at `at` holds the versions written by runs up to it (docs/contract.md §7). Runs write one at a
-- time (the refresh's lock; revert_run takes it too), so run ids follow their finishing order and
-- "written by run <= N" is "written by a run finished by `at`". Runs that failed wrote nothing.
-- Owner's rights: the as-of functions call it for their callers, who may not read etl_runs.
CREATE OR REPLACE FUNCTION globalcart.history_run_at(at timestamptz)
  RETURNS bigint
  LANGUAGE sql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.run_id FROM globalcart.etl_runs r
                    WHERE r.status = 'ok' AND r.finished_at <= $1
                    ORDER BY r.finished_at DESC, r.run_id DESC LIMIT 1), 0)
$$;
COMMENT ON FUNCTION globalcart.history_run_at(timestamptz) IS
  'The run_id of the last run finished by the given time (0: none); the as-of functions read the versions written up to it.';
