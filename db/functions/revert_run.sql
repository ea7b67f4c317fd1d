-- globalcart.revert_run(run_id): undoes what one run changed in the facts and dimensions
-- (docs/contract.md §7), as a new run — audited like any other, so that it can itself be reverted.
--   1. Takes the refresh's lock (waiting up to lock_timeout, 10 s, for a running refresh), then
--      checks the run: it must exist, have finished 'ok' (a failed run changed nothing) and not be
--      reverted now (a revert of it that has not itself been reverted) — else GC010, no change.
--   2. For every table with history (globalcart.history_tables(): each fact and dimension with an
--      audit table), the keys the run touched: rows it wrote (loaded_run_id) and versions it
--      replaced or deleted (audit rows with its audit_run_id). Where a key no longer holds what
--      the run left — a later run, or a change outside any run, changed it since and that change
--      stands — it refuses with GC011 naming those runs: revert them first, newest first. (A
--      later change that was itself reverted leaves the run's version in place: no refusal.) So
--      does an order a later run turned RETURNED while a return of this run is taken away.
--   3. Opens its own run (etl_runs.reverts_run_id = the run) and, for each key, from the version
--      it had before the run (the first audit row the run wrote for it):
--        - a row the run inserted (no version before) is deleted — audited, so it can come back;
--        - a row it updated gets its previous version back (an audited update: an order that
--          moved to another month moves back; one its returns turned RETURNED is DELIVERED or
--          COMPLETED again, since that is the version the run replaced);
--        - a row it deleted (a revert run's work) is inserted again.
--      Rows written back carry the new run's id as loaded_run_id: it wrote their current version.
--   4. The KPI summaries follow: the touched orders' contribution out before, in after; the
--      touched sessions are recomputed from their events (kpi_summaries_begin/apply's steps).
-- Watermarks are not moved backwards, rejects stay, staging is not touched. Returns the summary of
-- the new run — {"run_id", "status", "reverted_run_id", "rows_changed", "tables": {table:
-- {"deleted", "restored", "reinserted"}}, …} — also stored as its etl_runs.stats. Each table is
-- read once (the rows a run inserted carry no index); audit rows through a BRIN index on
-- audit_run_id and the key indexes.
CREATE OR REPLACE FUNCTION globalcart.revert_run(run_id bigint)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET jit = off
  SET lock_timeout = '10s'
  SET client_min_messages = warning  -- (not the NOTICEs of its DROP TABLE IF EXISTS)
AS $$
DECLARE
  v_target globalcart.etl_runs;
  v_reverted_by bigint;  -- its latest revert
  v_reverted boolean := false;
  v_chain bigint;
  v_next bigint;
  v_run_id bigint;
  v_started timestamptz := clock_timestamp();
  t record;
  v_later bigint[] := '{}'::bigint[];
  v_outside boolean := false;
  v_runs bigint[];
  v_out boolean;
  v_tables jsonb := '{}'::jsonb;
  v_deleted bigint;
  v_restored bigint;
  v_reinserted bigint;
  v_gone jsonb;  -- the keys a table's rows are deleted from
  v_prev jsonb;  -- the versions written back
  v_total bigint := 0::bigint;
  v_summary jsonb;
BEGIN
  BEGIN
    LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE;
  EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'revert_run: a refresh has been running for longer than lock_timeout (10 s)'
      USING ERRCODE = 'GC010', HINT = 'Try again when it has finished (globalcart.pipeline_health shows the runs).';
  END;

  SELECT * INTO v_target FROM globalcart.etl_runs r WHERE r.run_id = revert_run.run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'revert_run: there is no run %', coalesce(revert_run.run_id::text, 'NULL')
      USING ERRCODE = 'GC010', HINT = 'globalcart.etl_runs lists the runs; order_timeline() shows which run wrote what.';
  END IF;
  IF v_target.status <> 'ok' THEN
    RAISE EXCEPTION 'revert_run: run % %, so it changed nothing to revert', v_target.run_id,
                    CASE v_target.status WHEN 'failed' THEN 'failed' ELSE 'has not finished' END
      USING ERRCODE = 'GC010';
  END IF;
  IF v_target.finished_at < (SELECT m.applied_at FROM globalcart.schema_migrations m WHERE m.version = '0007_history.sql') THEN
    RAISE EXCEPTION 'revert_run: run % finished before this warehouse kept history (the upgrade to migration 0007), '
                    'so the rows it inserted are not known', v_target.run_id
      USING ERRCODE = 'GC010', HINT = 'Only runs made since can be reverted.';
  END IF;
  -- reverted now: its latest revert stands (is not reverted now itself), and so on down the chain
  v_chain := v_target.run_id;
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
    RAISE EXCEPTION 'revert_run: run % was already reverted (by run %)', v_target.run_id, v_reverted_by
      USING ERRCODE = 'GC010', HINT = format('To bring its changes back, revert run %s.', v_chain);
  END IF;

  -- the keys each table's rows were touched by, and whether anything changed them since
  FOR t IN SELECT * FROM globalcart.history_tables() LOOP
    EXECUTE format('DROP TABLE IF EXISTS pg_temp.%I, pg_temp.%I', 'gc_revert_keys_' || t.table_name,
                   'gc_revert_prev_' || t.table_name);
    EXECUTE format($sql$
      CREATE TEMPORARY TABLE %1$I ON COMMIT DROP AS
      SELECT %4$s FROM globalcart.%2$I WHERE loaded_run_id = $1
      UNION
      SELECT %4$s FROM globalcart.%3$I WHERE audit_run_id = $1 OR loaded_run_id = $1
      $sql$, 'gc_revert_keys_' || t.table_name, t.table_name, t.audit_table, t.key_columns)
      USING v_target.run_id;
    -- what the run left in each key, where it is not the current row: its last version of the
    -- key, replaced since (an audit row it wrote), or no row (it deleted the key)
    EXECUTE format($sql$
      WITH left_replaced AS (
        SELECT DISTINCT ON (%4$s) a.*
          FROM globalcart.%3$I a
         WHERE a.loaded_run_id = $1 AND a.audit_run_id IS DISTINCT FROM $1
         ORDER BY %4$s, a.audit_id DESC
      ), left_deleted AS (
        SELECT a.* FROM globalcart.%3$I a
         WHERE a.audit_run_id = $1 AND a.audit_action = 'DELETE'
      ), changed AS (  -- keys that hold something else now
        SELECT %6$s FROM left_replaced y
         WHERE NOT EXISTS (SELECT 1 FROM globalcart.%2$I x WHERE %5$s AND (%7$s) IS NOT DISTINCT FROM (%8$s))
        UNION
        SELECT %6$s FROM left_deleted y WHERE EXISTS (SELECT 1 FROM globalcart.%2$I x WHERE %5$s)
      )
      -- who made each of them what it is now: the run that wrote its current row, or the one
      -- that deleted it (NULL: a change outside any run)
      SELECT array_agg(DISTINCT c.run) FILTER (WHERE c.run IS NOT NULL), coalesce(bool_or(c.run IS NULL), false)
        FROM (SELECT CASE WHEN cur.found THEN cur.loaded_run_id ELSE del.audit_run_id END AS run
                FROM changed y
                LEFT JOIN LATERAL (SELECT x.loaded_run_id, true AS found FROM globalcart.%2$I x WHERE %5$s LIMIT 1)
                       AS cur ON true
                LEFT JOIN LATERAL (SELECT x.audit_run_id FROM globalcart.%3$I x WHERE %5$s
                                    ORDER BY x.audit_id DESC LIMIT 1) AS del ON true) AS c
      $sql$, 'gc_revert_keys_' || t.table_name, t.table_name, t.audit_table, t.key_columns, t.key_join,
             (SELECT string_agg('y.' || c, ', ') FROM unnest(string_to_array(t.key_columns, ', ')) AS c),
             (SELECT string_agg('x.' || c, ', ') FROM unnest(string_to_array(t.columns, ', ')) AS c),
             (SELECT string_agg('y.' || c, ', ') FROM unnest(string_to_array(t.columns, ', ')) AS c))
      INTO v_runs, v_out
      USING v_target.run_id;
    v_later := v_later || coalesce(v_runs, '{}');
    v_outside := v_outside OR v_out;
  END LOOP;
  -- Derived state (docs/contract.md §2.6): a later run that delivered an order turned it RETURNED because of
  -- a return of this run; taking the return away would leave it RETURNED with no return. That
  -- later run stands on this one: it is named like the others.
  v_later := v_later || ARRAY(
    SELECT DISTINCT o.loaded_run_id
      FROM (SELECT r.order_id FROM globalcart.fact_returns r WHERE r.loaded_run_id = v_target.run_id
            UNION
            SELECT a.order_id FROM globalcart.audit_fact_returns a
             WHERE a.audit_run_id = v_target.run_id OR a.loaded_run_id = v_target.run_id) AS k
      JOIN globalcart.fact_orders o ON o.order_id = k.order_id
     WHERE o.order_status = 'RETURNED' AND o.loaded_run_id > v_target.run_id
       -- (an order this run changed itself is one of its keys, checked above)
       AND NOT EXISTS (SELECT 1 FROM globalcart.audit_fact_orders a
                        WHERE a.order_id = o.order_id
                          AND (a.audit_run_id = v_target.run_id OR a.loaded_run_id = v_target.run_id)));
  IF cardinality(v_later) > 0 OR v_outside THEN
    v_later := ARRAY(SELECT DISTINCT r FROM unnest(v_later) AS r ORDER BY r DESC);
    RAISE EXCEPTION 'revert_run: run % cannot be reverted: %', v_target.run_id,
                    concat_ws(' and ',
                              CASE WHEN cardinality(v_later) > 0
                                   THEN format('later run%s %s changed the same rows since',
                                               CASE WHEN cardinality(v_later) > 1 THEN 's' ELSE '' END,
                                               array_to_string(v_later, ', ')) END,
                              CASE WHEN v_outside THEN 'rows it wrote were changed outside any run since' END)
      USING ERRCODE = 'GC011',
            HINT = CASE WHEN cardinality(v_later) > 0
                        THEN format('Revert %s first (newest first), then run %s.',
                                    CASE WHEN cardinality(v_later) > 1 THEN 'runs ' ELSE 'run ' END
                                      || array_to_string(v_later, ', '), v_target.run_id)
                        ELSE 'Those changes have no run to revert: put the rows right by hand.' END;
  END IF;

  INSERT INTO globalcart.etl_runs (started_at, status, reverts_run_id) VALUES (v_started, 'running', v_target.run_id)
  RETURNING etl_runs.run_id INTO v_run_id;
  PERFORM globalcart.publish_run_id(v_run_id);
  PERFORM globalcart.create_work_tables();

  -- the KPI summaries: the touched orders' old contribution out; their sessions are recomputed after
  FOR t IN SELECT * FROM globalcart.history_tables() h WHERE h.order_grain OR h.table_name = 'fact_funnel_events' LOOP
    IF t.order_grain THEN
      EXECUTE format('INSERT INTO globalcart.work_kpi_orders (order_id) SELECT DISTINCT k.order_id FROM pg_temp.%I k '
                     'ON CONFLICT DO NOTHING', 'gc_revert_keys_' || t.table_name);
    ELSE
      EXECUTE format('INSERT INTO pg_temp.gc_kpi_sessions (session_id) SELECT DISTINCT k.session_id FROM pg_temp.%I k '
                     'ON CONFLICT DO NOTHING', 'gc_revert_keys_' || t.table_name);
    END IF;
  END LOOP;
  BEGIN
    ANALYZE globalcart.work_kpi_orders;  -- (the planner joins it with the facts: its size)
  EXCEPTION WHEN active_sql_transaction THEN
    NULL;  -- Citus: this transaction read the facts its shards sit beside over several connections
  END;
  PERFORM globalcart.kpi_order_contributions(-1);

  FOR t IN SELECT * FROM globalcart.history_tables() LOOP
    -- the version each key had before the run: the first one it replaced or deleted
    EXECUTE format($sql$
      CREATE TEMPORARY TABLE %1$I ON COMMIT DROP AS
      SELECT DISTINCT ON (%3$s) a.* FROM globalcart.%2$I a
       WHERE a.audit_run_id = $1 AND a.loaded_run_id IS DISTINCT FROM $1
       ORDER BY %3$s, a.audit_id
      $sql$, 'gc_revert_prev_' || t.table_name, t.audit_table, t.key_columns)
      USING v_target.run_id;
    -- The keys to delete and the versions to write back go into each statement as a jsonb value
    -- read as rows of the table's type (jsonb_populate_recordset): on Citus a statement that
    -- changes a distributed or reference table may join it with such rows but not with a local
    -- table, and one whose subquery reads a local table sends that result to every node holding a
    -- placement — the coordinator too, where the owner may not log in.
    EXECUTE format('SELECT jsonb_agg(to_jsonb(k)) FROM pg_temp.%1$I k WHERE NOT EXISTS (SELECT 1 FROM pg_temp.%2$I y WHERE %3$s)',
                   'gc_revert_keys_' || t.table_name, 'gc_revert_prev_' || t.table_name,
                   (SELECT string_agg(format('k.%1$s = y.%1$s', c), ' AND ')
                      FROM unnest(string_to_array(t.key_columns, ', ')) AS c))
      INTO v_gone;
    EXECUTE format('SELECT jsonb_agg(to_jsonb(y)) FROM pg_temp.%I y', 'gc_revert_prev_' || t.table_name) INTO v_prev;
    EXECUTE format($sql$
      DELETE FROM globalcart.%1$I x USING jsonb_populate_recordset(NULL::globalcart.%1$I, $1) AS y
       WHERE %2$s
      $sql$, t.table_name, t.key_join)
      USING v_gone;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    EXECUTE format($sql$
      UPDATE globalcart.%1$I x SET (%2$s) = (SELECT %3$s) FROM jsonb_populate_recordset(NULL::globalcart.%1$I, $1) AS y
       WHERE %4$s
      $sql$, t.table_name,
             -- (not the key's columns, equal already: Citus refuses a SET of the distribution column)
             (SELECT string_agg(c, ', ') FROM unnest(string_to_array(t.columns, ', ')) AS c
               WHERE c <> ALL (string_to_array(t.key_columns, ', '))),
             (SELECT string_agg('y.' || c, ', ') FROM unnest(string_to_array(t.columns, ', ')) AS c
               WHERE c <> ALL (string_to_array(t.key_columns, ', '))),
             t.key_join)
      USING v_prev;
    GET DIAGNOSTICS v_restored = ROW_COUNT;
    -- (the versions whose key is in no row now: the INSERT reads them from the temporary table,
    -- which Citus sends to the shards through the coordinator)
    EXECUTE format($sql$
      INSERT INTO globalcart.%1$I (%3$s)
      SELECT %4$s FROM pg_temp.%2$I y
       WHERE (%5$s) NOT IN (SELECT %6$s FROM globalcart.%1$I x
                              JOIN jsonb_populate_recordset(NULL::globalcart.%1$I, $1) AS y ON %7$s)
      $sql$, t.table_name, 'gc_revert_prev_' || t.table_name, t.columns,
             (SELECT string_agg('y.' || c, ', ') FROM unnest(string_to_array(t.columns, ', ')) AS c),
             (SELECT string_agg('y.' || c, ', ') FROM unnest(string_to_array(t.key_columns, ', ')) AS c),
             (SELECT string_agg('x.' || c, ', ') FROM unnest(string_to_array(t.key_columns, ', ')) AS c),
             t.key_join)
      USING v_prev;
    GET DIAGNOSTICS v_reinserted = ROW_COUNT;
    IF v_deleted + v_restored + v_reinserted > 0 THEN
      v_tables := v_tables || jsonb_build_object(t.table_name, jsonb_build_object(
                    'deleted', v_deleted, 'restored', v_restored, 'reinserted', v_reinserted));
      v_total := v_total + v_deleted + v_restored + v_reinserted;
    END IF;
  END LOOP;

  PERFORM globalcart.kpi_summaries_apply(true);
  PERFORM globalcart.drop_work_tables();
  FOR t IN SELECT * FROM globalcart.history_tables() LOOP
    EXECUTE format('DROP TABLE pg_temp.%I, pg_temp.%I', 'gc_revert_keys_' || t.table_name,
                   'gc_revert_prev_' || t.table_name);
  END LOOP;

  v_summary := jsonb_build_object('run_id', v_run_id, 'status', 'ok', 'reverted_run_id', v_target.run_id,
                                  'started_at', v_started, 'finished_at', clock_timestamp(),
                                  'rows_changed', v_total, 'tables', v_tables);
  UPDATE globalcart.etl_runs r
     SET status = 'ok', finished_at = (v_summary ->> 'finished_at')::timestamptz, stats = v_summary,
         rows_applied = v_total
   WHERE r.run_id = v_run_id;
  RETURN v_summary;
END;
$$;
COMMENT ON FUNCTION globalcart.revert_run(bigint) IS
  'Undoes one run (docs/contract.md §7) as a new audited run: rows it inserted deleted, rows it updated or deleted restored; refuses (GC011) when later runs changed the same rows.';
