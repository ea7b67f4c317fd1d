-- globalcart.schedule_incremental_refresh(schedule, follow): scheduling (CONTRACT sections 4
-- and 5) with pg_cron, when pg_cron lives in this database (cron.database_name; elsewhere
-- require_pg_cron_here() raises GC004 with the command to run there instead — `globalcart
-- schedule` does it with cron.schedule_in_database). Registers, or re-registers:
--   'globalcart-incremental-refresh'  at `schedule`, globalcart.refresh_job_command(follow): the
--       refresh bounded by etl_settings 'max_run_time', or, with follow (every minute only,
--       else GC008), CALL globalcart.refresh_for();
--   'globalcart-purge-history'        daily, globalcart.purge_history() (retention);
--   'globalcart-purge-cron-history'   daily, deletes cron.job_run_details rows older than a
--       week (pg_cron never purges them);
-- and returns the refresh job's id.
CREATE OR REPLACE FUNCTION globalcart.schedule_incremental_refresh(
    schedule text DEFAULT '* * * * *', follow boolean DEFAULT false)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_job_id bigint;
BEGIN
  PERFORM globalcart.require_pg_cron_here();
  IF schedule_incremental_refresh.follow AND schedule_incremental_refresh.schedule <> '* * * * *' THEN
    RAISE EXCEPTION 'schedule_incremental_refresh: follow mode runs every minute, not %',
                    quote_literal(schedule_incremental_refresh.schedule)
      USING ERRCODE = 'GC008', HINT = 'SELECT globalcart.schedule_incremental_refresh(follow => true);';
  END IF;
  v_job_id := cron.schedule('globalcart-incremental-refresh', schedule_incremental_refresh.schedule,
                            globalcart.refresh_job_command(schedule_incremental_refresh.follow));
  PERFORM cron.schedule('globalcart-purge-history', '37 3 * * *', globalcart.purge_job_command());
  PERFORM cron.schedule('globalcart-purge-cron-history', '17 3 * * *',
                        'DELETE FROM cron.job_run_details WHERE end_time < now() - interval ''7 days''');
  RETURN v_job_id;
END;
$$;
COMMENT ON FUNCTION globalcart.schedule_incremental_refresh(text, boolean) IS
  'Registers (or re-registers) the pg_cron job globalcart-incremental-refresh (plain, or follow mode), the daily retention job and a daily purge of cron.job_run_details; returns the job id.';
