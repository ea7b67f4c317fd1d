-- globalcart.follow_loop_beat(): the follow loop of this backend is still going (see
-- follow_loop_begin); refresh_for calls it after each refresh call.
CREATE OR REPLACE FUNCTION globalcart.follow_loop_beat()
  RETURNS void
  LANGUAGE sql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE globalcart.etl_follow_loop SET beat_at = clock_timestamp() WHERE pid = pg_backend_pid()
$$;
COMMENT ON FUNCTION globalcart.follow_loop_beat() IS 'The heartbeat of this backend''s follow loop.';
