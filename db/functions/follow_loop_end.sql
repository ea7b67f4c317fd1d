-- globalcart.follow_loop_end(): the follow loop of this backend is over (see follow_loop_begin).
CREATE OR REPLACE FUNCTION globalcart.follow_loop_end()
  RETURNS void
  LANGUAGE sql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE globalcart.etl_follow_loop SET pid = NULL, started_at = NULL, beat_at = NULL WHERE pid = pg_backend_pid()
$$;
COMMENT ON FUNCTION globalcart.follow_loop_end() IS 'Unregisters this backend''s follow loop.';
