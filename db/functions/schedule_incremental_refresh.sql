-- globalcart.schedule_incremental_refresh(schedule, follow, run_as): scheduling (docs/contract.md
-- §§4, 5 and 6) with pg_cron, when pg_cron lives in this database (cron.database_name; elsewhere
-- require_pg_cron_here() raises GC004 with the command to run there instead — `globalcart
-- schedule` does it with cron.schedule_in_database). Registers, or re-registers, as jobs that
-- pg_cron runs as `run_as` (default globalcart_cron: a login member of globalcart_refresher, not a
-- superuser; checked by check_job_user):
--   'globalcart-incremental-refresh'  at `schedule`, globalcart.refresh_job_command(follow): the
--       refresh bounded by etl_settings 'max_run_time', or, with follow (every minute only,
--       else GC008), CALL globalcart.refresh_for();
--   'globalcart-purge-history'        daily, globalcart.purge_history() (retention);
--   'globalcart-purge-cron-history'   daily, deletes cron.job_run_details rows older than a
--       week (pg_cron never purges them);
-- and returns the refresh job's id. Jobs of these names for this database that run as another
-- user are removed first. Scheduling a job for another user needs a superuser (pg_cron's rule).
CREATE OR REPLACE FUNCTION globalcart.schedule_incremental_refresh(
    schedule text DEFAULT '* * * * *', follow boolean DEFAULT false, run_as name DEFAULT 'globalcart_cron')
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_job_id bigint;
  v_other text;
BEGIN
  PERFORM globalcart.require_pg_cron_here();
  IF schedule_incremental_refresh.follow AND schedule_incremental_refresh.schedule <> '* * * * *' THEN
    RAISE EXCEPTION 'schedule_incremental_refresh: follow mode runs every minute, not %',
                    quote_literal(schedule_incremental_refresh.schedule)
      USING ERRCODE = 'GC008', HINT = 'SELECT globalcart.schedule_incremental_refresh(follow => true);';
  END IF;
  PERFORM globalcart.check_job_user(schedule_incremental_refresh.run_as);
  SELECT j.database INTO v_other FROM cron.job j
   WHERE j.jobname = 'globalcart-incremental-refresh' AND j.username = schedule_incremental_refresh.run_as
     AND j.database <> current_database();
  IF FOUND THEN
    RAISE EXCEPTION 'the pg_cron job globalcart-incremental-refresh of % refreshes database %, not %',
                    quote_ident(run_as), quote_ident(v_other), quote_ident(current_database())
      USING ERRCODE = 'GC004', HINT = 'Unschedule it there first, or schedule this warehouse with another run_as role.';
  END IF;
  PERFORM cron.unschedule(j.jobid) FROM cron.job j
    WHERE j.jobname IN ('globalcart-incremental-refresh', 'globalcart-purge-history', 'globalcart-purge-cron-history')
      AND j.database = current_database() AND j.username <> schedule_incremental_refresh.run_as;
  v_job_id := cron.schedule_in_database('globalcart-incremental-refresh', schedule_incremental_refresh.schedule,
                                        globalcart.refresh_job_command(schedule_incremental_refresh.follow),
                                        current_database(), schedule_incremental_refresh.run_as);
  PERFORM cron.schedule_in_database('globalcart-purge-history', '37 3 * * *', globalcart.purge_job_command(),
                                    current_database(), schedule_incremental_refresh.run_as);
  PERFORM cron.schedule_in_database('globalcart-purge-cron-history', '17 3 * * *',
                                    'DELETE FROM cron.job_run_details WHERE end_time < now() - interval ''7 days''',
                                    current_database(), schedule_incremental_refresh.run_as);
  RETURN v_job_id;
END;
$$;
COMMENT ON FUNCTION globalcart.schedule_incremental_refresh(text, boolean, name) IS
  'Registers (or re-registers) the pg_cron jobs of the refresh (plain, or follow mode), of retention and of the cron history purge, run as a login member of globalcart_refresher; returns the refresh job''s id.';
