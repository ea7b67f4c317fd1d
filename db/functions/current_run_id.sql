-- globalcart.current_run_id(): the etl_runs.run_id of the refresh running in this
-- transaction, or NULL outside a refresh. run_incremental_refresh() sets it with
-- set_config('globalcart.run_id', …, true); the audit triggers read it once per row, so it
-- is an inlinable SQL-standard body (bound when created) without a SET search_path clause.
CREATE OR REPLACE FUNCTION globalcart.current_run_id()
  RETURNS bigint
  LANGUAGE sql STABLE PARALLEL SAFE
RETURN nullif(pg_catalog.current_setting('globalcart.run_id', true), '')::bigint;
COMMENT ON FUNCTION globalcart.current_run_id() IS
  'run_id of the refresh running in this transaction (NULL outside one); stamped on audit rows.';
