-- globalcart.citus_explain_guard(): what the refresh, a revert, a purge, a rebuild and the as-of
-- read do first, so that auto_explain (or any EXPLAIN of their statements) on a Citus coordinator
-- cannot break them. Nothing on one server (Citus not loaded).
--
-- Citus 13.2 fetches the plan of a distributed statement's task from a worker by sending it
-- EXPLAIN with the statement's parameters; inside a PL/pgSQL function those parameters are not
-- filled in yet (PL/pgSQL hands them over lazily), so the worker cannot plan it, and Citus goes
-- on without rolling back to the savepoint it took for that EXPLAIN: the worker's transaction is
-- left aborted. The next statement of the transaction fails ("current transaction is aborted"),
-- and the next BEGIN … EXCEPTION block (a savepoint sent to that worker) takes the session down
-- (FATAL: RollbackAndReleaseCurrentSubTransaction: unexpected state SUBBEGIN) — what
-- docs/citus.md tells. So, for the rest of the caller's transaction, EXPLAIN shows the
-- coordinator's side of a distributed statement only (citus.explain_distributed_queries = off):
-- auto_explain still logs each statement with its time. EXPLAIN ANALYZE cannot be had at all
-- (Citus refuses it for INSERT … SELECT through the coordinator, and fails on the same
-- parameters), so with auto_explain.log_analyze on the call is refused up front with GC014
-- instead of failing in its middle.
CREATE OR REPLACE FUNCTION globalcart.citus_explain_guard()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF current_setting('citus.explain_distributed_queries', true) IS NULL THEN
    RETURN;  -- (Citus is not loaded)
  END IF;
  PERFORM set_config('citus.explain_distributed_queries', 'off', true);
  IF current_setting('auto_explain.log_analyze', true) = 'on'
     AND current_setting('auto_explain.log_min_duration', true) <> '-1' THEN
    RAISE EXCEPTION 'auto_explain.log_analyze is on: Citus cannot EXPLAIN ANALYZE the distributed statements of this call'
      USING ERRCODE = 'GC014',
            HINT = 'SET auto_explain.log_analyze = off in this session (auto_explain still logs each statement and its '
                   'time), or auto_explain.log_min_duration = -1; see docs/citus.md.';
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.citus_explain_guard() IS
  'On a Citus coordinator: turns off the fetch of workers'' plans for EXPLAIN for the rest of the transaction (Citus 13.2 leaves the worker''s transaction aborted when it fails inside a function), and refuses (GC014) under auto_explain.log_analyze. Nothing on one server.';
