-- Scheduling (CONTRACT section 4) with pg_cron, when pg_cron lives in this database
-- (cron.database_name). Where it lives in another one, these raise GC004 with the command
-- to run there instead: `python -m driver schedule` does it with cron.schedule_in_database.
--
--   globalcart.schedule_incremental_refresh(schedule)  registers (or re-registers) the job
--       'globalcart-incremental-refresh' = SELECT globalcart.run_incremental_refresh(), and a
--       daily 'globalcart-purge-cron-history' that deletes cron.job_run_details rows older than
--       a week (pg_cron never purges them); returns the refresh job's id.
--   globalcart.unschedule_incremental_refresh()  removes both; true when the refresh job existed.
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
                          '''globalcart-incremental-refresh'', ''* * * * *'', '
                          '''SELECT globalcart.run_incremental_refresh()'', %L);', v_cron_db, current_database());
  ELSIF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'the pg_cron extension is not created in this database'
      USING ERRCODE = 'GC004', HINT = 'Run migrate again, or CREATE EXTENSION pg_cron;';
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.require_pg_cron_here() IS
  'Raises GC004, with what to do, unless pg_cron is loaded and created in this database.';

CREATE OR REPLACE FUNCTION globalcart.schedule_incremental_refresh(schedule text DEFAULT '* * * * *')
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_job_id bigint;
BEGIN
  PERFORM globalcart.require_pg_cron_here();
  v_job_id := cron.schedule('globalcart-incremental-refresh', schedule_incremental_refresh.schedule,
                            'SELECT globalcart.run_incremental_refresh()');
  PERFORM cron.schedule('globalcart-purge-cron-history', '17 3 * * *',
                        'DELETE FROM cron.job_run_details WHERE end_time < now() - interval ''7 days''');
  RETURN v_job_id;
END;
$$;
COMMENT ON FUNCTION globalcart.schedule_incremental_refresh(text) IS
  'Registers (or re-registers) the pg_cron job globalcart-incremental-refresh and a daily purge of cron.job_run_details; returns the job id.';

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
    WHERE j.jobname IN ('globalcart-incremental-refresh', 'globalcart-purge-cron-history');
  RETURN v_existed;
END;
$$;
COMMENT ON FUNCTION globalcart.unschedule_incremental_refresh() IS
  'Removes the pg_cron jobs of the incremental refresh and of the history purge; true when the refresh job existed.';
