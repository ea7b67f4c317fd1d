-- Scheduling (CONTRACT sections 4 and 5) with pg_cron, when pg_cron lives in this database
-- (cron.database_name). Where it lives in another one, these raise GC004 with the command
-- to run there instead: `python -m driver schedule` does it with cron.schedule_in_database.
--
--   globalcart.schedule_incremental_refresh(schedule, follow)  registers (or re-registers):
--       'globalcart-incremental-refresh'  globalcart.refresh_job_command(follow): the refresh
--           bounded by etl_settings 'max_run_time', or, with follow, CALL globalcart.refresh_for()
--           (every minute whatever the schedule: the loop runs for 55 seconds);
--       'globalcart-purge-history'        daily globalcart.purge_history() (retention);
--       'globalcart-purge-cron-history'   daily, deletes cron.job_run_details rows older than
--           a week (pg_cron never purges them);
--     and returns the refresh job's id.
--   globalcart.unschedule_incremental_refresh()  removes all three; true when the refresh job
--       existed.
--
-- They install in a database without pg_cron too: PL/pgSQL resolves cron.* when it runs,
-- after require_pg_cron_here() has checked that pg_cron is there.

CREATE OR REPLACE FUNCTION globalcart.require_pg_cron_here()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_cron_db text := current_setting('cron.database_name', true);
BEGIN
  IF v_cron_db IS NULL THEN
    RAISE EXCEPTION 'pg_cron is not loaded by this server'
      USING ERRCODE = 'GC004',
            HINT = format('Set shared_preload_libraries = ''pg_cron'' and cron.database_name = %L in postgresql.conf, '
                          'restart PostgreSQL, then run migrate again.', current_database());
  ELSIF v_cron_db <> current_database() THEN
    RAISE EXCEPTION 'pg_cron runs in database %, not in %', quote_ident(v_cron_db), quote_ident(current_database())
      USING ERRCODE = 'GC004',
            HINT = format('Run `python -m driver schedule`, or in database %s: SELECT cron.schedule_in_database('
                          '''globalcart-incremental-refresh'', ''* * * * *'', %L, %L);',
                          v_cron_db, globalcart.refresh_job_command(false), current_database());
  ELSIF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'the pg_cron extension is not created in this database'
      USING ERRCODE = 'GC004', HINT = 'Run migrate again, or CREATE EXTENSION pg_cron;';
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.require_pg_cron_here() IS
  'Raises GC004, with what to do, unless pg_cron is loaded and created in this database.';

-- The one-argument form of before 0002 would make a call with one argument ambiguous.
DROP FUNCTION IF EXISTS globalcart.schedule_incremental_refresh(text);
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

CREATE OR REPLACE FUNCTION globalcart.unschedule_incremental_refresh()
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_existed boolean;
BEGIN
  PERFORM globalcart.require_pg_cron_here();
  v_existed := EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = 'globalcart-incremental-refresh');
  PERFORM cron.unschedule(j.jobid)
     FROM cron.job j
    WHERE j.jobname IN ('globalcart-incremental-refresh', 'globalcart-purge-history', 'globalcart-purge-cron-history');
  RETURN v_existed;
END;
$$;
COMMENT ON FUNCTION globalcart.unschedule_incremental_refresh() IS
  'Removes the pg_cron jobs of the incremental refresh, of retention and of the cron history purge; true when the refresh job existed.';
