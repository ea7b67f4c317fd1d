-- globalcart.refresh_job_command(follow): the command of the pg_cron job
-- 'globalcart-incremental-refresh' (docs/contract.md §§4 and 5.1), one definition for
-- schedule_incremental_refresh() and for `globalcart schedule` (cron.schedule_in_database).
--   plain:  SELECT pg_catalog.set_config('statement_timeout', globalcart.job_statement_timeout(), false);
--           SELECT globalcart.run_incremental_refresh()
--           — the run is bounded by 'max_run_time' as read at each run: in a multi-statement
--           command the timeout set by the first statement applies to the second.
--   follow: CALL globalcart.refresh_for()
--           — a procedure that COMMITs must be the command's only statement; it bounds
--           itself by 'max_run_time' (see refresh_for).
-- The daily retention job's command is globalcart.purge_job_command().
CREATE OR REPLACE FUNCTION globalcart.refresh_job_command(follow boolean DEFAULT false)
  RETURNS text
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN refresh_job_command.follow THEN 'CALL globalcart.refresh_for()'
              ELSE 'SELECT pg_catalog.set_config(''statement_timeout'', globalcart.job_statement_timeout(), false); '
                   || 'SELECT globalcart.run_incremental_refresh()' END
$$;
COMMENT ON FUNCTION globalcart.refresh_job_command(boolean) IS
  'The command of the pg_cron refresh job: the refresh bounded by max_run_time, or the follow loop CALL globalcart.refresh_for().';
