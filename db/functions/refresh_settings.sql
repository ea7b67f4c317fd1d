-- globalcart.refresh_settings(): every setting a refresh call uses, read and checked once
-- at its start (docs/contract.md §5: each has a default and takes effect at the next call).
-- An unparsable value raises GC001 naming the setting; the refresh records that as a
-- failed run instead of silently using the default.
CREATE OR REPLACE FUNCTION globalcart.refresh_settings(
    OUT lock_timeout interval, OUT max_run_time interval, OUT max_rows_per_run bigint,
    OUT max_clock_skew interval, OUT orphan_timeout interval)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  lock_timeout := globalcart.etl_setting_interval('lock_timeout', interval '10 seconds');
  max_run_time := globalcart.etl_setting_interval('max_run_time', interval '15 minutes');
  max_rows_per_run := globalcart.etl_setting_integer('max_rows_per_run', 500000);
  max_clock_skew := globalcart.etl_setting_interval('max_clock_skew', interval '5 minutes');
  orphan_timeout := globalcart.etl_setting_interval('orphan_timeout', interval '24 hours');
END;
$$;
COMMENT ON FUNCTION globalcart.refresh_settings() IS
  'The settings of a refresh call (lock_timeout, max_run_time, max_rows_per_run, max_clock_skew, orphan_timeout), checked; GC001 names a bad one.';
