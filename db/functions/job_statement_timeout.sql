-- globalcart.job_statement_timeout(): etl_settings 'max_run_time' (default 15 minutes) in
-- milliseconds, as text for set_config('statement_timeout', …). The plain pg_cron job's
-- command starts with it (globalcart.refresh_job_command), so every scheduled run is bounded
-- by the value the setting has when that run starts. A value that is not an interval gives
-- the default here — the job stays bounded — and the refresh that follows fails on it,
-- recorded in etl_runs with a message naming the setting.
CREATE OR REPLACE FUNCTION globalcart.job_statement_timeout()
  RETURNS text
  LANGUAGE plpgsql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_max_run_time interval;
BEGIN
  BEGIN
    v_max_run_time := globalcart.etl_setting_interval('max_run_time', interval '15 minutes');
  EXCEPTION WHEN SQLSTATE 'GC001' THEN
    v_max_run_time := interval '15 minutes';
  END;
  RETURN (extract(epoch FROM v_max_run_time) * 1000)::bigint::text;
END;
$$;
COMMENT ON FUNCTION globalcart.job_statement_timeout() IS
  'max_run_time in milliseconds (the default when the setting is bad), for the statement_timeout of a scheduled job.';
