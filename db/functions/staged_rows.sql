-- globalcart.staged_rows(orphan_cutoff): what waits in staging, per source of
-- globalcart.etl_sources, in the order the refresh applies them:
--   staged            rows not yet examined by a refresh (a source's backlog)
--   deferred          rows a refresh put back to wait for their order (order-grain children)
--   due               deferred rows the next refresh can settle: their order has been applied
--                     (e.g. a call bounded by max_rows_per_run did not reach them), or they
--                     were first staged at or before orphan_cutoff (orphans). Counted only
--                     when orphan_cutoff is given: the deferred rows' orders are looked up in
--                     fact_orders, by the list of their ids (on Citus: on the shards of those
--                     ids), one index probe each.
--   oldest_staged_at  the first-staged time (ingested_at) of the oldest row not deferred
-- One scan of each staging table, generated from the registry. The refresh reads it to decide
-- whether there is anything to do and for the backlog it reports; pipeline_health reads it too.
-- Through the stg_id index, never a sequential scan: staging is a queue, and after a bulk load
-- its heap is mostly empty pages (gigabytes at ten million orders, kept by the rows still
-- waiting at its end) that a sequential scan would read at every call; the index holds only the
-- rows still there once vacuumed (the condition stg_id > 0, true of every row, lets the planner
-- take it).
CREATE OR REPLACE FUNCTION globalcart.staged_rows(p_orphan_cutoff timestamptz DEFAULT NULL)
  RETURNS TABLE (source_name text, staged bigint, deferred bigint, due bigint, oldest_staged_at timestamptz)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  SET enable_seqscan = off
AS $$
-- Its rows come from RETURN QUERY EXECUTE (one generated query per source), whose result
-- plpgsql_check cannot see, so it would take the OUT columns for unset:
-- @plpgsql_check_options: extra_warnings = false
DECLARE
  v_source globalcart.etl_sources;
  v_waiting bigint[];  -- the orders that deferred rows (not yet orphans) wait for
  v_arrived bigint[];  -- those of them fact_orders holds now
BEGIN
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    IF v_source.waits_for_order THEN
      v_arrived := '{}';
      IF p_orphan_cutoff IS NOT NULL THEN
        EXECUTE format('SELECT array_agg(DISTINCT s.order_id) FROM globalcart.%I s
                         WHERE s.stg_id > 0 AND s.deferrals > 0 AND s.ingested_at > $1', v_source.staging_table)
          INTO v_waiting USING p_orphan_cutoff;
        IF v_waiting IS NOT NULL THEN
          v_arrived := ARRAY(SELECT o.order_id FROM globalcart.fact_orders o WHERE o.order_id = ANY (v_waiting));
        END IF;
      END IF;
      RETURN QUERY EXECUTE format($sql$
        SELECT %L::text, count(*) FILTER (WHERE s.deferrals = 0), count(*) FILTER (WHERE s.deferrals > 0),
               count(*) FILTER (WHERE $1 IS NOT NULL AND s.deferrals > 0
                                  AND (s.ingested_at <= $1 OR s.order_id = ANY ($2))),
               min(s.ingested_at) FILTER (WHERE s.deferrals = 0)
          FROM globalcart.%I s
         WHERE s.stg_id > 0
        $sql$, v_source.source_name, v_source.staging_table)
        USING p_orphan_cutoff, v_arrived;
    ELSE
      RETURN QUERY EXECUTE format(
        'SELECT %L::text, count(*), 0::bigint, 0::bigint, min(s.ingested_at) FROM globalcart.%I s WHERE s.stg_id > 0',
        v_source.source_name, v_source.staging_table);
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION globalcart.staged_rows(timestamptz) IS
  'Per source: rows staged and not yet examined, rows deferred (waiting for their order), deferred rows the next refresh can settle, oldest staged time.';
