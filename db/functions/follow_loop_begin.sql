-- globalcart.follow_loop_begin(): registers the calling backend as the follow loop
-- (globalcart.refresh_for) in globalcart.etl_follow_loop and returns etl_settings 'max_run_time'
-- (its default when the setting is bad: the loop's first call records that failure) — or NULL
-- when another backend's loop is running: that backend is alive and its loop beat
-- (follow_loop_beat, after each call) in the last 90 seconds — a loop interrupted in a session
-- that stays open stops counting within 90 seconds, and so does one whose pid a new backend got.
-- SECURITY DEFINER: callers need no right on the table, and nobody else can write it — unlike an
-- advisory lock key, no outsider can make a loop stop by holding it.
CREATE OR REPLACE FUNCTION globalcart.follow_loop_begin()
  RETURNS interval
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET lock_timeout = '10s'
AS $$
DECLARE
  v_loop globalcart.etl_follow_loop;
  v_max_run_time interval;
BEGIN
  SELECT * INTO STRICT v_loop FROM globalcart.etl_follow_loop FOR UPDATE;
  IF v_loop.pid IS NOT NULL AND v_loop.pid <> pg_backend_pid()
     AND v_loop.beat_at > clock_timestamp() - interval '90 seconds'
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = v_loop.pid)
  THEN
    RETURN NULL;
  END IF;
  UPDATE globalcart.etl_follow_loop SET pid = pg_backend_pid(), started_at = clock_timestamp(), beat_at = clock_timestamp();
  BEGIN
    v_max_run_time := globalcart.etl_setting_interval('max_run_time', interval '15 minutes');
  EXCEPTION WHEN SQLSTATE 'GC001' THEN
    v_max_run_time := interval '15 minutes';
  END;
  RETURN v_max_run_time;
END;
$$;
COMMENT ON FUNCTION globalcart.follow_loop_begin() IS
  'Registers this backend as the follow loop and returns max_run_time; NULL when another backend''s loop is running.';
