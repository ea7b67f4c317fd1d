-- globalcart.revert_find_conflicts(run_id): the second job of globalcart.revert_run. For every
-- table with history (globalcart.history_tables(): each fact and dimension with an audit table),
-- the keys the run touched go into pg_temp.gc_revert_keys_<table> (dropped at commit): rows it
-- wrote (loaded_run_id) and versions it replaced or deleted (audit rows with its audit_run_id).
-- Where a key no longer holds what the run left — a later run, or a change outside any run,
-- changed it since and that change stands — it refuses with GC011 naming those runs: revert them
-- first, newest first. (A later change that was itself reverted leaves the run's version in
-- place: no refusal.) So does an order a later run turned RETURNED while a return of this run is
-- taken away. Audit rows are read through a BRIN index on audit_run_id and the key indexes.
CREATE OR REPLACE FUNCTION globalcart.revert_find_conflicts(p_run_id bigint)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- It creates tables through EXECUTE, which plpgsql_check cannot see into, so its volatility hint
-- does not apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  t record;
  v_later bigint[] := '{}'::bigint[];
  v_outside boolean := false;
  v_runs bigint[];
  v_out boolean;
BEGIN
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
      USING p_run_id;
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
      USING p_run_id;
    v_later := v_later || coalesce(v_runs, '{}');
    v_outside := v_outside OR v_out;
  END LOOP;
  -- Derived state (docs/contract.md §2.6): a later run that delivered an order turned it RETURNED because of
  -- a return of this run; taking the return away would leave it RETURNED with no return. That
  -- later run stands on this one: it is named like the others.
  v_later := v_later || ARRAY(
    SELECT DISTINCT o.loaded_run_id
      FROM (SELECT r.order_id FROM globalcart.fact_returns r WHERE r.loaded_run_id = p_run_id
            UNION
            SELECT a.order_id FROM globalcart.audit_fact_returns a
             WHERE a.audit_run_id = p_run_id OR a.loaded_run_id = p_run_id) AS k
      JOIN globalcart.fact_orders o ON o.order_id = k.order_id
     WHERE o.order_status = 'RETURNED' AND o.loaded_run_id > p_run_id
       -- (an order this run changed itself is one of its keys, checked above)
       AND NOT EXISTS (SELECT 1 FROM globalcart.audit_fact_orders a
                        WHERE a.order_id = o.order_id
                          AND (a.audit_run_id = p_run_id OR a.loaded_run_id = p_run_id)));
  IF cardinality(v_later) > 0 OR v_outside THEN
    v_later := ARRAY(SELECT DISTINCT r FROM unnest(v_later) AS r ORDER BY r DESC);
    RAISE EXCEPTION 'revert_run: run % cannot be reverted: %', p_run_id,
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
                                      || array_to_string(v_later, ', '), p_run_id)
                        ELSE 'Those changes have no run to revert: put the rows right by hand.' END;
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.revert_find_conflicts(bigint) IS
  'revert_run, step 2: the keys the run touched, per table with history (pg_temp.gc_revert_keys_<table>); GC011 when later changes stand on them.';
