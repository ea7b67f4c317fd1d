-- globalcart.isolate_failing_rows(source, run_id, now, latest_valid, orphan_cutoff): the
-- failure path of globalcart.apply_or_isolate(), taken only after the whole batch of a source
-- failed with an error a row can cause. It bisects: the claimed rows, in staging order
-- (stg_id), are applied in parts, each by globalcart.run_source_step() inside a subtransaction;
-- a part that succeeds stays applied, a part that fails is rolled back and split in two,
-- and a single row that fails is rejected with reason
--   'row_error: SQLSTATE <code>: <message>'
-- (its record the staged row, like every reject). k failing rows among n cost about
-- 2·k·log2(n) attempts. Versions of one key that land in different parts are still applied
-- newest-wins (the guarded upsert compares with what is stored), but count as 'stale'
-- rather than 'duplicate'.
--
-- When it returns, the work tables look as after the fast path: gc_claim_<source> holds
-- the whole claim and work_<source> one row a key, the newest version a part applied. An error
-- the rows cannot cause (globalcart.is_row_error) is raised again: the call fails.
--
-- Table names come from the registry of sources (globalcart.etl_sources), never from a caller's text.
CREATE OR REPLACE FUNCTION globalcart.isolate_failing_rows(
    p_source text, p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- It writes temporary tables through EXECUTE, which plpgsql_check cannot see into, so its
-- volatility hint does not apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_claim constant text := 'gc_claim_' || p_source;
  v_win constant text := 'work_' || p_source;  -- (in schema globalcart)
  v_key text;  -- the source's key (globalcart.etl_sources.key_column)
  v_all constant text := 'gc_isolate_all_' || p_source;    -- the whole claim, set aside
  v_kept constant text := 'gc_isolate_kept_' || p_source;  -- winners of the parts applied
  v_ids bigint[];      -- stg_id of every claimed row, ascending
  v_parts int[];       -- a stack of [lo, hi] index pairs into v_ids still to apply
  v_lo int;
  v_hi int;
  v_mid int;
  v_stats jsonb := globalcart.source_stats();
  v_sqlstate text;
  v_message text;
BEGIN
  SELECT s.key_column INTO v_key FROM globalcart.etl_sources s WHERE s.source_name = p_source;
  IF v_key IS NULL THEN
    RAISE EXCEPTION 'isolate_failing_rows: unknown source %', quote_literal(p_source) USING ERRCODE = 'GC006';
  END IF;
  EXECUTE format('CREATE TEMPORARY TABLE %I ON COMMIT DROP AS SELECT * FROM pg_temp.%I', v_all, v_claim);
  EXECUTE format('CREATE INDEX ON pg_temp.%I (stg_id)', v_all);
  EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DROP', v_kept, v_win);
  EXECUTE format('SELECT array_agg(a.stg_id ORDER BY a.stg_id) FROM pg_temp.%I a', v_all) INTO v_ids;
  v_parts := ARRAY[1, cardinality(v_ids)];

  WHILE cardinality(v_parts) > 0 LOOP
    v_lo := v_parts[cardinality(v_parts) - 1];
    v_hi := v_parts[cardinality(v_parts)];
    v_parts := v_parts[1:cardinality(v_parts) - 2];
    EXECUTE format('DELETE FROM pg_temp.%I', v_claim);
    EXECUTE format('INSERT INTO pg_temp.%I SELECT * FROM pg_temp.%I a WHERE a.stg_id BETWEEN $1 AND $2',
                   v_claim, v_all)
      USING v_ids[v_lo], v_ids[v_hi];
    BEGIN
      v_stats := globalcart.add_stats(v_stats,
                   globalcart.run_source_step(p_source, p_run_id, p_now, p_latest_valid, p_orphan_cutoff));
      EXECUTE format('INSERT INTO pg_temp.%I SELECT * FROM globalcart.%I', v_kept, v_win);
      EXECUTE format('DELETE FROM globalcart.%I', v_win);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
      IF NOT globalcart.is_row_error(v_sqlstate) THEN
        RAISE;
      END IF;
      IF v_lo = v_hi THEN
        EXECUTE format('INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record) '
                       'SELECT $1, $2, $3, to_jsonb(a) FROM pg_temp.%I a WHERE a.stg_id = $4', v_all)
          USING p_run_id, p_source, format('row_error: SQLSTATE %s: %s', v_sqlstate, left(v_message, 500)),
                v_ids[v_lo];
        v_stats := globalcart.add_stats(v_stats, globalcart.source_stats(p_claimed => 1, p_rejected => 1));
      ELSE
        v_mid := (v_lo + v_hi) / 2;
        v_parts := v_parts || ARRAY[v_mid + 1, v_hi, v_lo, v_mid];  -- the lower half is taken next
      END IF;
    END;
  END LOOP;

  -- one row a key, as after the fast path: the newest version of it that a part applied (versions
  -- of one key in several parts were each applied newest-wins; the KPI summaries count a fresh
  -- order's children from these rows)
  EXECUTE format('INSERT INTO globalcart.%1$I SELECT DISTINCT ON (k.%3$I) * FROM pg_temp.%2$I k
                  ORDER BY k.%3$I, k.updated_at DESC, k.stg_id DESC', v_win, v_kept, v_key);
  EXECUTE format('DELETE FROM pg_temp.%I', v_claim);
  EXECUTE format('INSERT INTO pg_temp.%I SELECT * FROM pg_temp.%I', v_claim, v_all);
  EXECUTE format('DROP TABLE pg_temp.%I, pg_temp.%I', v_all, v_kept);
  RETURN v_stats;
END;
$$;
COMMENT ON FUNCTION globalcart.isolate_failing_rows(text, bigint, timestamptz, timestamptz, timestamptz) IS
  'Failure path of a source''s batch: applies it in bisected parts, rejects each row that fails alone (row_error: SQLSTATE …), applies the rest.';
