-- globalcart.create_work_tables(): the refresh's scratch space, made ready by every call that
-- has something to do. For each source of globalcart.etl_sources: the temporary table
-- gc_claim_<source>, the rows the call took out of staging (exactly the staging table's columns),
-- created afresh and dropped at the call's end (and at commit, whatever happens); and
-- globalcart.work_<source>, the newest valid version of each key (migration 0008: a table of the
-- schema, which Citus distributes beside the facts), emptied here. For the KPI summaries
-- (globalcart.kpi_summaries_begin/_apply): globalcart.work_kpi_orders and the temporary
-- gc_kpi_sessions, the orders and sessions the batch touches, gc_kpi_order_delta, the orders'
-- contributions to kpi_order_summary (old ones negated, new ones), gc_kpi_order_states, the
-- orders' state before (side -1) and after (side +1) the batch, and gc_kpi_session_moves, the
-- sessions' state before and after the batch.
--
-- Never reused: the refresh runs with its owner's rights, so a table the caller prepared under
-- one of these names (with a trigger, say) must not be written by it. Such a table makes the
-- call fail, recorded, with a hint to drop it (SQLSTATE 42P07).
CREATE OR REPLACE FUNCTION globalcart.create_work_tables()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_source globalcart.etl_sources;
  v_table text;
BEGIN
  FOR v_table IN
    SELECT t.name
      FROM globalcart.etl_sources s
     CROSS JOIN LATERAL (VALUES ('gc_claim_' || s.source_name)) AS t(name)
    UNION ALL
    SELECT t.name FROM unnest(ARRAY['gc_kpi_sessions', 'gc_kpi_session_moves', 'gc_kpi_order_delta',
                                                  'gc_kpi_order_states']) AS t(name)
  LOOP
    IF to_regclass(format('pg_temp.%I', v_table)) IS NOT NULL THEN
      RAISE EXCEPTION 'a temporary table pg_temp.% already exists in this session', v_table
        USING ERRCODE = 'duplicate_table',
              HINT = format('The refresh creates its work tables itself: DROP TABLE pg_temp.%I; then call it again.',
                            v_table);
    END IF;
  END LOOP;
  -- emptied by DELETE, not TRUNCATE: a TRUNCATE makes new files for each table (and on Citus for
  -- each shard, in a distributed transaction), which costs a small call more than the call itself.
  -- But a table a large batch filled (a seed's, a backlog's) is truncated: DELETE would leave its
  -- pages, and every later call would read them all until a VACUUM (on Citus the coordinator's
  -- table is an empty shell: it is always DELETEd)
  FOR v_table IN SELECT 'work_kpi_orders' UNION ALL
                 SELECT * FROM (SELECT 'work_' || s.source_name FROM globalcart.etl_sources s ORDER BY s.apply_order) AS t
  LOOP
    IF pg_catalog.pg_relation_size(format('globalcart.%I', v_table)::regclass) > 1048576 THEN
      EXECUTE format('TRUNCATE globalcart.%I', v_table);
    ELSE
      EXECUTE format('DELETE FROM globalcart.%I', v_table);
    END IF;
  END LOOP;
  FOR v_source IN SELECT * FROM globalcart.etl_sources s ORDER BY s.apply_order LOOP
    EXECUTE format('CREATE TEMPORARY TABLE %I (LIKE globalcart.%I) ON COMMIT DROP',
                   'gc_claim_' || v_source.source_name, v_source.staging_table);
  END LOOP;
  CREATE TEMPORARY TABLE gc_kpi_sessions (session_id text PRIMARY KEY) ON COMMIT DROP;
  CREATE TEMPORARY TABLE gc_kpi_session_moves
    (session_id text NOT NULL,
     had_old boolean NOT NULL DEFAULT false, old_first_event_ts timestamptz, old_channel text, old_purchased boolean,
     old_carted boolean, old_payment_failed boolean, old_max_cart_value_usd numeric,
     has_new boolean NOT NULL, first_event_ts timestamptz, first_event_id uuid, channel text, purchased boolean,
     carted boolean, payment_failed boolean, max_cart_value_usd numeric) ON COMMIT DROP;
  CREATE TEMPORARY TABLE gc_kpi_order_delta (LIKE globalcart.kpi_order_summary) ON COMMIT DROP;
  -- (the columns of kpi_order_state, with the side and whether the batch brought returns; not LIKE:
  -- its NOT NULLs are not wanted, and its composite type must not reach a Citus worker)
  CREATE TEMPORARY TABLE gc_kpi_order_states
    (order_id bigint NOT NULL, side integer NOT NULL, returns boolean NOT NULL, order_ts timestamptz,
     country_code char(2), channel text, currency char(3), order_status text, deleted boolean, gross_amount numeric,
     net_amount numeric, units bigint, refund_amount numeric, delivered_shipments integer, breached_shipments integer,
     payments integer, failed_payments integer) ON COMMIT DROP;
END;
$$;
COMMENT ON FUNCTION globalcart.create_work_tables() IS
  'Creates the temporary claim tables of one refresh call, afresh (never reusing a table of the same name), and empties the work tables.';
