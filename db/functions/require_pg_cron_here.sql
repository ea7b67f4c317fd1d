-- globalcart.require_pg_cron_here(): raises GC004, with what to do, unless pg_cron is loaded
-- by the server and created in this database. The schedule functions call it first; they
-- install in a database without pg_cron too, as PL/pgSQL resolves cron.* only when it runs.
CREATE OR REPLACE FUNCTION globalcart.require_pg_cron_here()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
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
  ELSIF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron') THEN
    RAISE EXCEPTION 'the pg_cron extension is not created in this database'
      USING ERRCODE = 'GC004', HINT = 'Run migrate again, or CREATE EXTENSION pg_cron;';
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.require_pg_cron_here() IS
  'Raises GC004, with what to do, unless pg_cron is loaded and created in this database.';
