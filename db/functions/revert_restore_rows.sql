-- globalcart.revert_restore_rows(run_id): the third job of globalcart.revert_run, inside its new
-- run. For each table with history and each key the run touched (pg_temp.gc_revert_keys_<table>),
-- from the version it had before the run (the first audit row the run wrote for it):
--   - a row the run inserted (no version before) is deleted — audited, so it can come back;
--   - a row it updated gets its previous version back (an audited update: an order that moved to
--     another month moves back; one its returns turned RETURNED is DELIVERED or COMPLETED again,
--     since that is the version the run replaced);
--   - a row it deleted (a revert run's work) is inserted again.
-- Rows written back carry the new run's id as loaded_run_id (the audit trigger sets it): it wrote
-- their current version. Returns, per table that changed, {"deleted", "restored", "reinserted"},
-- and the sum of them all.
CREATE OR REPLACE FUNCTION globalcart.revert_restore_rows(p_run_id bigint, OUT tables jsonb, OUT rows_changed bigint)
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- It writes through EXECUTE, which plpgsql_check cannot see into, so its volatility hint does not
-- apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  t record;
  v_deleted bigint;
  v_restored bigint;
  v_reinserted bigint;
  v_gone jsonb;  -- the keys a table's rows are deleted from
  v_prev jsonb;  -- the versions written back
BEGIN
  tables := '{}'::jsonb;
  rows_changed := 0;
  FOR t IN SELECT * FROM globalcart.history_tables() LOOP
    -- the version each key had before the run: the first one it replaced or deleted
    EXECUTE format($sql$
      CREATE TEMPORARY TABLE %1$I ON COMMIT DROP AS
      SELECT DISTINCT ON (%3$s) a.* FROM globalcart.%2$I a
       WHERE a.audit_run_id = $1 AND a.loaded_run_id IS DISTINCT FROM $1
       ORDER BY %3$s, a.audit_id
      $sql$, 'gc_revert_prev_' || t.table_name, t.audit_table, t.key_columns)
      USING p_run_id;
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
      tables := tables || jsonb_build_object(t.table_name, jsonb_build_object(
                  'deleted', v_deleted, 'restored', v_restored, 'reinserted', v_reinserted));
      rows_changed := rows_changed + v_deleted + v_restored + v_reinserted;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION globalcart.revert_restore_rows(bigint) IS
  'revert_run, step 3: each key the run touched gets the version it had before the run (deleted, restored or inserted again, audited).';
