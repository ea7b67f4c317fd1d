-- globalcart.dashboard_follow_loop(): the follow loop's heartbeat, for readers (the live
-- dashboard, docs/dashboard.md): when the loop that runs now (or ran last) started and last beat,
-- and whether it is alive — it beat in the last 90 seconds, as globalcart.follow_loop_begin counts
-- it. No row when no loop ever ran. With the owner's rights (readers may not read the table).
CREATE OR REPLACE FUNCTION globalcart.dashboard_follow_loop()
  RETURNS TABLE (started_at timestamptz, beat_at timestamptz, alive boolean)
  LANGUAGE sql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.started_at, l.beat_at, l.beat_at > clock_timestamp() - interval '90 seconds'
    FROM globalcart.etl_follow_loop l
   WHERE l.pid IS NOT NULL
$$;
COMMENT ON FUNCTION globalcart.dashboard_follow_loop() IS
  'The follow loop''s start and last heartbeat, and whether it is alive, for readers.';
