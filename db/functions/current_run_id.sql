-- globalcart.current_run_id(): the etl_runs.run_id of the refresh running in this
-- transaction, or NULL outside a refresh. run_incremental_refresh() sets it with
-- set_config('globalcart.run_id', …, true); the audit triggers read it.
CREATE OR REPLACE FUNCTION globalcart.current_run_id()
  RETURNS bigint
  LANGUAGE sql STABLE PARALLEL SAFE
  SET search_path = pg_catalog
AS $$
  SELECT nullif(current_setting('globalcart.run_id', true), '')::bigint
$$;
COMMENT ON FUNCTION globalcart.current_run_id() IS
  'run_id of the refresh running in this transaction (NULL outside one); stamped on audit rows.';
