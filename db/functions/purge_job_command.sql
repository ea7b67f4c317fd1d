-- globalcart.purge_job_command(): the command of the daily pg_cron job
-- 'globalcart-purge-history': globalcart.purge_history() bounded, like the plain refresh job,
-- by etl_settings 'max_run_time' as read at each run.
CREATE OR REPLACE FUNCTION globalcart.purge_job_command()
  RETURNS text
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'SELECT pg_catalog.set_config(''statement_timeout'', globalcart.job_statement_timeout(), false); '
         || 'SELECT globalcart.purge_history()'
$$;
COMMENT ON FUNCTION globalcart.purge_job_command() IS
  'The command of the daily pg_cron job globalcart-purge-history: purge_history() bounded by max_run_time.';
