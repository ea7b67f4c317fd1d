-- globalcart.drop_old_fact_months(cutoff): fact retention. Drops every monthly partition of the
-- partitioned facts (found in the catalog) that lies wholly before cutoff — orders and their
-- children by their order's order_ts, funnel events by event_ts — and keeps the KPI summaries
-- equal to a rebuild from what is left: the order buckets of those days go (an order and its
-- children are dropped together) and so do those orders' rows of kpi_order_state, and each
-- session that had an event there has its state recomputed from the events left
-- (kpi_summaries_apply, as after a refresh). Run by globalcart.purge_history() under the
-- refresh's lock when etl_settings 'fact_retention' is an interval. Dropping a partition takes an ACCESS EXCLUSIVE lock on its table for an instant
-- (bounded by lock_timeout). Returns the names of the partitions dropped.
CREATE OR REPLACE FUNCTION globalcart.drop_old_fact_months(p_cutoff timestamptz)
  RETURNS text[]
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- DDL through EXECUTE:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_parts text[];                -- the partitions to drop
  v_part text;
  v_order_months tstzrange[];    -- the months of fact_orders dropped
  v_events_before timestamptz;   -- every funnel event before this is dropped
BEGIN
  SELECT array_agg(p.part ORDER BY p.parent, p.part),
         array_agg(tstzrange(p.lower_bound, p.upper_bound)) FILTER (WHERE p.parent = 'fact_orders'),
         max(p.upper_bound) FILTER (WHERE p.parent = 'fact_funnel_events')
    INTO v_parts, v_order_months, v_events_before
    FROM (SELECT parent.relname::text AS parent, part.relname::text AS part,
                 (regexp_match(pg_catalog.pg_get_expr(part.relpartbound, part.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
                   AS lower_bound,
                 (regexp_match(pg_catalog.pg_get_expr(part.relpartbound, part.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
                   AS upper_bound
            FROM pg_catalog.pg_inherits i
            JOIN pg_catalog.pg_class parent ON parent.oid = i.inhparent
            JOIN pg_catalog.pg_class part ON part.oid = i.inhrelid
           WHERE parent.relnamespace = 'globalcart'::regnamespace AND parent.relkind = 'p'
             AND parent.relname LIKE 'fact\_%') AS p
   WHERE p.upper_bound <= p_cutoff;
  IF v_parts IS NULL THEN
    RETURN '{}'::text[];
  END IF;

  PERFORM globalcart.create_work_tables();
  IF v_events_before IS NOT NULL THEN  -- the sessions that lose events: every one that began before
    INSERT INTO pg_temp.gc_kpi_sessions (session_id)
    SELECT k.session_id FROM globalcart.kpi_session_state k WHERE k.first_event_ts < v_events_before;
    ANALYZE pg_temp.gc_kpi_sessions;
  END IF;

  FOREACH v_part IN ARRAY v_parts LOOP
    EXECUTE format('DROP TABLE globalcart.%I', v_part);
  END LOOP;
  -- the orders of those months go, their children with them (same months): so do their buckets
  DELETE FROM globalcart.kpi_order_summary s
   USING unnest(v_order_months) AS m(month)
   WHERE (s.order_day::timestamp AT TIME ZONE 'UTC') <@ m.month;
  DELETE FROM globalcart.kpi_order_state s  -- (a scan of the state: once a day at most)
   USING unnest(v_order_months) AS m(month)
   WHERE s.order_ts <@ m.month;
  PERFORM globalcart.kpi_summaries_apply(p_recompute_sessions => true);
  PERFORM globalcart.drop_work_tables();
  RETURN v_parts;
END;
$$;
COMMENT ON FUNCTION globalcart.drop_old_fact_months(timestamptz) IS
  'Fact retention: drops the monthly partitions of the facts that end before the cutoff and takes them out of the KPI summaries; returns their names.';
