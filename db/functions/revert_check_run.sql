-- globalcart.revert_check_run(run_id): the first job of globalcart.revert_run — the run may be
-- reverted: it exists, finished 'ok' (a failed run changed nothing), finished after this warehouse
-- began to keep history (migration 0007), and is not reverted now (its latest revert has not itself
-- been reverted, and so on down the chain). Else GC010, naming what is wrong. Returns the run.
CREATE OR REPLACE FUNCTION globalcart.revert_check_run(p_run_id bigint, OUT target globalcart.etl_runs)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_reverted_by bigint;  -- its latest revert
  v_reverted boolean := false;
  v_chain bigint;
  v_next bigint;
BEGIN
  SELECT * INTO target FROM globalcart.etl_runs r WHERE r.run_id = p_run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'revert_run: there is no run %', coalesce(p_run_id::text, 'NULL')
      USING ERRCODE = 'GC010', HINT = 'globalcart.etl_runs lists the runs; order_timeline() shows which run wrote what.';
  END IF;
  IF target.status <> 'ok' THEN
    RAISE EXCEPTION 'revert_run: run % %, so it changed nothing to revert', target.run_id,
                    CASE target.status WHEN 'failed' THEN 'failed' ELSE 'has not finished' END
      USING ERRCODE = 'GC010';
  END IF;
  IF target.finished_at < (SELECT m.applied_at FROM globalcart.schema_migrations m WHERE m.version = '0007_history.sql') THEN
    RAISE EXCEPTION 'revert_run: run % finished before this warehouse kept history (the upgrade to migration 0007), '
                    'so the rows it inserted are not known', target.run_id
      USING ERRCODE = 'GC010', HINT = 'Only runs made since can be reverted.';
  END IF;
  -- reverted now: its latest revert stands (is not reverted now itself), and so on down the chain
  v_chain := target.run_id;
  LOOP
    SELECT r.run_id INTO v_next
      FROM globalcart.etl_runs r WHERE r.reverts_run_id = v_chain AND r.status = 'ok'
     ORDER BY r.run_id DESC LIMIT 1;
    EXIT WHEN NOT FOUND;
    v_reverted := NOT v_reverted;
    IF v_reverted_by IS NULL THEN
      v_reverted_by := v_next;
    END IF;
    v_chain := v_next;
  END LOOP;
  IF v_reverted THEN
    RAISE EXCEPTION 'revert_run: run % was already reverted (by run %)', target.run_id, v_reverted_by
      USING ERRCODE = 'GC010', HINT = format('To bring its changes back, revert run %s.', v_chain);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.revert_check_run(bigint) IS
  'revert_run, step 1: the run exists, finished ok, after history began, and is not reverted now — else GC010.';
