-- globalcart.publish_run_id(run_id): makes run_id the run of this transaction for the audit
-- triggers and the loaded_run_id defaults (globalcart.current_run_id()), until it commits, and
-- the session user who called it the audit tables' audited_by (their default reads
-- globalcart.audited_by). On one server that is set_config(…, local). On Citus the triggers fire
-- on the shards, in the workers' sessions, which a set_config on the coordinator does not reach
-- (and whose session user is the role Citus connects as): there both are also issued as SET LOCAL
-- with citus.propagate_set_commands = 'local', which Citus passes on to every worker connection of
-- the transaction, open or yet to open.
CREATE OR REPLACE FUNCTION globalcart.publish_run_id(p_run_id bigint)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM set_config('globalcart.run_id', p_run_id::text, true);
  PERFORM set_config('globalcart.audited_by', session_user, true);
  IF current_setting('citus.propagate_set_commands', true) IS NOT NULL THEN  -- (Citus is loaded)
    PERFORM set_config('citus.propagate_set_commands', 'local', true);
    EXECUTE format('SET LOCAL globalcart.run_id = %L', p_run_id::text);
    EXECUTE format('SET LOCAL globalcart.audited_by = %L', session_user);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.publish_run_id(bigint) IS
  'Publishes the run id of this transaction to the audit triggers (current_run_id), on Citus also to the workers.';
