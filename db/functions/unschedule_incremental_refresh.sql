-- globalcart.unschedule_incremental_refresh(): removes the pg_cron jobs that
-- schedule_incremental_refresh() registers for this database (whoever they run as); true when the
-- refresh job existed.
CREATE OR REPLACE FUNCTION globalcart.unschedule_incremental_refresh()
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_existed boolean;
BEGIN
  PERFORM globalcart.require_pg_cron_here();
  v_existed := EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = 'globalcart-incremental-refresh'
                                                  AND j.database = current_database());
  PERFORM cron.unschedule(j.jobid)
     FROM cron.job j
    WHERE j.jobname IN ('globalcart-incremental-refresh', 'globalcart-purge-history', 'globalcart-purge-cron-history')
      AND j.database = current_database();
  RETURN v_existed;
END;
$$;
COMMENT ON FUNCTION globalcart.unschedule_incremental_refresh() IS
  'Removes the pg_cron jobs of the incremental refresh, of retention and of the cron history purge; true when the refresh job existed.';
