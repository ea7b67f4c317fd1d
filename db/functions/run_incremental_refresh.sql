-- globalcart.run_incremental_refresh(): applies what is staged in globalcart.stg_* to the
-- dimensions and facts, in one transaction (docs/contract.md §2), and never stops on a bad
-- row or hangs on a lock (section 5).
--
--   1. LOCK globalcart.etl_refresh_lock NOWAIT: if another refresh holds it, return "skipped"
--      at once. The call runs with its owner's rights (SECURITY DEFINER) and nobody else has any
--      privilege on that table, so no other session can take the lock (an advisory lock key
--      could be taken by any connected role).
--   2. Read the settings (globalcart.refresh_settings; a bad one fails the call, recorded)
--      and bound every lock wait by 'lock_timeout'.
--   3. Nothing to do — no fresh row, and no deferred row whose order has been applied or
--      whose orphan timeout has passed (globalcart.staged_rows): return at once, writing no
--      etl_runs row — a follow loop makes thousands of these a day. Rows still waiting for
--      their order are left alone and reported as claimed and deferred again.
--   4. Open the run (etl_runs) and publish its id to the audit triggers; create the work tables
--      and, where missing, this month's and next month's partitions of the audit tables.
--   5. Claim: one statement DELETEs from every staging table RETURNING into the temporary
--      claim tables — at most 'max_rows_per_run' rows per source, lowest stg_id (earliest
--      staged) first — so one snapshot decides the batch, and a row committed after it
--      stays in staging for the next call: nothing is read twice or lost.
--   6. Apply, in the order of globalcart.etl_sources (dimensions before facts, orders before
--      their children: customers, products, orders, order_items, payments, shipments, returns,
--      funnel_events) — each by globalcart.apply_or_isolate(), which isolates and rejects rows
--      that make its batch fail.
--   7. Derived state: returns turn delivered orders RETURNED.
--   8. The KPI summaries follow: the touched orders' and sessions' old contribution out (noted
--      right after the claim by globalcart.kpi_summaries_begin), their new one in
--      (globalcart.kpi_summaries_apply); and why they moved, by cause
--      (globalcart.kpi_attribution_record, docs/contract.md §8).
--   9. Close the run with its summary (globalcart.refresh_summary), which is also returned;
--      each source's "backlog" counts its rows still staged, deferred ones aside.
-- Any error in 2-9 (a lock or statement timeout, a cancel, a bad setting, anything else)
-- rolls all of it back — facts, audit, watermarks, rejects, and the claim, so staging is
-- intact — and the call returns {"status": "failed", "error": {"sqlstate", "message"}, …}
-- after recording a 'failed' etl_runs row. The next call retries the same rows.
CREATE OR REPLACE FUNCTION globalcart.run_incremental_refresh()
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  -- Planner settings for the duration of the refresh (and the steps it calls): the warehouse's
  -- hot pages are cached, so an index probe costs about a sequential page read, and batches
  -- of a few hundred thousand rows are sorted in memory. One refresh runs at a time.
  SET random_page_cost = 1.1
  SET work_mem = '64MB'
  -- Every join of the batch with the warehouse goes through an index (docs/design.md rule 4): a
  -- nested loop of index probes, whose cost follows the batch. With monthly partitions a probe by
  -- a key without its month visits each month's index, and the planner, costing that, would
  -- rather hash the whole of a fact once a batch is a tenth of it: O(warehouse). No step joins two
  -- unindexed sets (the work tables are joined to indexed tables only).
  SET enable_hashjoin = off
  SET enable_mergejoin = off
  -- No JIT compilation: the cost estimates of a batch's statements over partitioned facts pass
  -- jit_above_cost, and compiling them (~40 ms a statement) cost more than running them.
  SET jit = off
  -- The default of etl_settings 'lock_timeout'; the call sets the configured value, and this
  -- clause gives the caller's own value back when the call returns.
  SET lock_timeout = '10s'
AS $$
DECLARE
  v_started timestamptz := clock_timestamp();
  v_now timestamptz := now();
  v_settings record;
  v_cutoff timestamptz;        -- a deferred child first staged at or before this is an orphan
  v_latest_valid timestamptz;  -- an updated_at after this is rejected as future_timestamp
  v_max bigint;                -- max_rows_per_run
  v_work boolean;              -- anything to do: a fresh row, or a waiting child that can be settled
  v_source text;
  v_skipped boolean := false;
  v_run_id bigint;
  v_stats jsonb := '{}'::jsonb;
  v_returned bigint;
  v_summary jsonb;
  v_sqlstate text;
  v_message text;
  v_detail text;
  v_hint text;
BEGIN
  BEGIN
    LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE NOWAIT;
  EXCEPTION WHEN lock_not_available THEN
    v_skipped := true;
  END;
  IF v_skipped THEN
    RAISE NOTICE 'globalcart.run_incremental_refresh: another refresh is running; skipped';
    RETURN globalcart.refresh_summary(NULL, 'skipped', v_started,
             (SELECT jsonb_object_agg(s.source_name, globalcart.source_stats() || '{"backlog": null}'::jsonb)
                FROM globalcart.etl_sources s),
             jsonb_build_object('reason', 'another refresh is running'));
  END IF;

  BEGIN
    PERFORM globalcart.citus_explain_guard();  -- (auto_explain on a Citus coordinator)
    v_settings := globalcart.refresh_settings();
    PERFORM set_config('lock_timeout', (extract(epoch FROM v_settings.lock_timeout) * 1000)::bigint::text, true);
    v_cutoff := v_now - v_settings.orphan_timeout;
    v_latest_valid := v_now + v_settings.max_clock_skew;
    v_max := v_settings.max_rows_per_run;

    SELECT bool_or(s.staged > 0 OR s.due > 0),
           jsonb_object_agg(s.source_name, globalcart.source_stats(p_claimed => s.deferred, p_deferred => s.deferred)
                                           || '{"backlog": 0}'::jsonb)
      INTO v_work, v_stats
      FROM globalcart.staged_rows(v_cutoff) AS s;
    IF NOT v_work THEN
      RETURN globalcart.refresh_summary(NULL, 'ok', v_started, v_stats,
                                        '{"derived": {"orders_returned": 0}}'::jsonb);
    END IF;

    INSERT INTO globalcart.etl_runs (started_at, status) VALUES (v_started, 'running')
    RETURNING run_id INTO v_run_id;
    PERFORM globalcart.publish_run_id(v_run_id);
    PERFORM globalcart.create_work_tables();
    PERFORM globalcart.add_audit_partitions(v_now);

    -- The claim: one statement, so one snapshot decides the batch; per source, the rows up to
    -- globalcart.claim_bound(), at most v_max (max_rows_per_run), lowest stg_id first.
    WITH d_customers AS (DELETE FROM globalcart.stg_customers s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_customers', v_max)) RETURNING s.*),
         c_customers AS (INSERT INTO pg_temp.gc_claim_customers SELECT * FROM d_customers),
         d_products AS (DELETE FROM globalcart.stg_products s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_products', v_max)) RETURNING s.*),
         c_products AS (INSERT INTO pg_temp.gc_claim_products SELECT * FROM d_products),
         d_orders AS (DELETE FROM globalcart.stg_orders s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_orders', v_max)) RETURNING s.*),
         c_orders AS (INSERT INTO pg_temp.gc_claim_orders SELECT * FROM d_orders),
         d_order_items AS (DELETE FROM globalcart.stg_order_items s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_order_items', v_max)) RETURNING s.*),
         c_order_items AS (INSERT INTO pg_temp.gc_claim_order_items SELECT * FROM d_order_items),
         d_payments AS (DELETE FROM globalcart.stg_payments s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_payments', v_max)) RETURNING s.*),
         c_payments AS (INSERT INTO pg_temp.gc_claim_payments SELECT * FROM d_payments),
         d_shipments AS (DELETE FROM globalcart.stg_shipments s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_shipments', v_max)) RETURNING s.*),
         c_shipments AS (INSERT INTO pg_temp.gc_claim_shipments SELECT * FROM d_shipments),
         d_returns AS (DELETE FROM globalcart.stg_returns s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_returns', v_max)) RETURNING s.*),
         c_returns AS (INSERT INTO pg_temp.gc_claim_returns SELECT * FROM d_returns),
         d_funnel_events AS (DELETE FROM globalcart.stg_funnel_events s
                 WHERE s.stg_id <= (SELECT globalcart.claim_bound('stg_funnel_events', v_max)) RETURNING s.*)
    INSERT INTO pg_temp.gc_claim_funnel_events SELECT * FROM d_funnel_events;
    PERFORM globalcart.kpi_summaries_begin();

    v_stats := '{}'::jsonb;
    FOR v_source IN SELECT s.source_name FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
      v_stats := v_stats || jsonb_build_object(
        v_source, globalcart.apply_or_isolate(v_source, v_run_id, v_now, v_latest_valid, v_cutoff));
    END LOOP;
    v_returned := globalcart.derive_returned_orders();
    PERFORM globalcart.kpi_summaries_apply();
    PERFORM globalcart.kpi_attribution_record(v_run_id);
    PERFORM globalcart.drop_work_tables();

    SELECT jsonb_object_agg(s.source_name, (v_stats -> s.source_name) || jsonb_build_object('backlog', s.staged))
      INTO v_stats
      FROM globalcart.staged_rows() AS s;
    v_summary := globalcart.refresh_summary(v_run_id, 'ok', v_started, v_stats,
                                            jsonb_build_object('derived', jsonb_build_object('orders_returned', v_returned)));
    UPDATE globalcart.etl_runs
       SET finished_at = (v_summary ->> 'finished_at')::timestamptz, status = 'ok', stats = v_summary,
           rows_claimed = (v_summary #>> '{totals,claimed}')::bigint,
           rows_applied = (v_summary #>> '{totals,inserted}')::bigint + (v_summary #>> '{totals,updated}')::bigint,
           rows_rejected = (v_summary #>> '{totals,rejected}')::bigint,
           rows_deferred = (v_summary #>> '{totals,deferred}')::bigint
     WHERE run_id = v_run_id;
    RETURN v_summary;
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
  END;
  -- Everything of steps 2-9 is rolled back; what is left is to say so, and record it.
  RETURN globalcart.record_failed_run(v_started, jsonb_strip_nulls(jsonb_build_object(
           'sqlstate', v_sqlstate, 'message', v_message, 'detail', nullif(v_detail, ''),
           'hint', nullif(v_hint, ''))));
END;
$$;
COMMENT ON FUNCTION globalcart.run_incremental_refresh() IS
  'Applies what is staged in globalcart.stg_* in one transaction (lossless bounded claim, dedup, newest-wins upsert, audit, quarantine and isolation of failing rows, deferral of early children) and returns a jsonb summary; status skipped when another refresh is running, failed (recorded in etl_runs, nothing changed) when it cannot finish.';
