-- globalcart.place_child_rows(source, run_id, orphan_cutoff): the step that the order-grain
-- children (the sources of globalcart.etl_sources that wait for their order: order_items,
-- payments, shipments, returns) share, run by their apply_<source>() after dedup, on
-- globalcart.work_<source>:
--   1. each row has its order's order_ts (the row's partition, docs/contract.md §1), from the order
--      directory (globalcart.kpi_order_state, which apply_orders keeps): one UPDATE of the work
--      table joined with the directory by order_id — on Citus both are distributed by it and
--      colocated, so the join runs on each shard (joined in apply_<source>'s INSERT from its
--      temporary claim table instead, Citus pulled the whole directory to the coordinator); an
--      order the directory does not know and whose id is not above every stored one (written
--      outside the refresh) is looked up in every month;
--   2. a row whose key is stored under another order is rejected 'order_id_changed'
--      (an item, payment, shipment or return never moves to another order): the key is looked up
--      beside its order, in that order's partition, and only a key not found there and not above
--      every stored key is looked up in every month (new keys, the most of a batch, need none);
--   3. a row whose order is not in fact_orders waits: it goes back into staging as it was
--      staged — same stg_id, so it keeps its place in the queue (earliest staged first), same
--      ingested_at, so the orphan timeout counts from its first staging — with its deferrals
--      count raised by one; or, when it was first staged at or before orphan_cutoff (now -
--      etl_settings 'orphan_timeout'), it is rejected 'orphan';
--   4. of the rows left, those whose key is new (new_keys): the caller's upsert inserts them and
--      updates the others, if newer — the lookup of step 2 told which keys are stored (a
--      partitioned table cannot say in RETURNING whether a row was inserted).
-- They leave work_<source> with only the rows to upsert; the table names differ per source, hence
-- format() (names from the registry, quoted with %I). The greatest key stored (its
-- globalcart.bulk_bound) is read once: a greater key is looked up nowhere.
CREATE OR REPLACE FUNCTION globalcart.place_child_rows(
    p_source text, p_run_id bigint, p_orphan_cutoff timestamptz,
    OUT moved bigint, OUT orphans bigint, OUT deferred bigint, OUT new_keys bigint)
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- It writes (DELETE, INSERT) through EXECUTE, which plpgsql_check cannot see into, so its
-- volatility hint does not apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_source globalcart.etl_sources;
  v_columns text;  -- the staging table's business columns
  v_max_key bigint;  -- the greatest key stored: a greater one cannot be
  v_not_here bigint[];  -- keys of the batch (key_column) not above v_max_key and not stored under their order
  v_keys bigint[];  -- of those, the ones stored elsewhere
  v_orders bigint[];  -- orders of the batch the directory does not know, not above every stored one
  v_unplaced bigint;  -- rows whose order the directory does not know (none: no row can wait)
BEGIN
  SELECT * INTO STRICT v_source FROM globalcart.etl_sources s WHERE s.source_name = p_source AND s.waits_for_order;
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = format('globalcart.%I', v_source.staging_table)::regclass
     AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT IN ('stg_id', 'ingested_at', 'deferrals');

  EXECUTE format('SELECT globalcart.bulk_bound((SELECT max(f.%I) FROM globalcart.%I f))',
                 v_source.key_column, v_source.fact_table)
    INTO v_max_key;

  -- each row's order: its order_ts is the row's partition; no order, no order_ts. First the
  -- directory's; an order it does not know and not above every stored one is looked up in every month
  EXECUTE format($sql$
    UPDATE globalcart.%1$I w SET order_ts = s.order_ts
      FROM globalcart.kpi_order_state s
     WHERE s.order_id = w.order_id
    $sql$, 'work_' || p_source);
  -- (not above every stored one: not fresh in globalcart.work_kpi_orders, which kpi_summaries_begin
  -- filled with every order of the batch and its globalcart.bulk_bound — colocated with the work
  -- table on Citus, so one statement on the shards, not a second one for the bound)
  EXECUTE format($sql$
    SELECT array_agg(DISTINCT w.order_id) FILTER (WHERE k.fresh IS NOT TRUE), count(*) FROM globalcart.%1$I w
      LEFT JOIN globalcart.work_kpi_orders k ON k.order_id = w.order_id
     WHERE w.order_ts IS NULL
    $sql$, 'work_' || p_source)
    INTO v_orders, v_unplaced;
  IF v_orders IS NOT NULL THEN  -- (orders written outside the refresh: a list, each looked up once)
    EXECUTE format($sql$
      UPDATE globalcart.%1$I w SET order_ts = o.order_ts
        FROM (SELECT o.order_id, o.order_ts FROM globalcart.fact_orders o WHERE o.order_id = ANY ($1)) AS o
       WHERE w.order_id = o.order_id
      $sql$, 'work_' || p_source)
      USING v_orders;
  END IF;

  -- Keys stored under another order: first the batch's keys not stored under their own order (an
  -- index probe of the key beside its order_id, in the order's partition; on Citus on the shard of
  -- that order), then, of those not above every stored key, the ones stored at all (by the key's
  -- index in every month; on Citus on every shard: the key is not the column the facts are
  -- distributed by). Lists of keys, not joins, for those two lookups: a key is looked up once,
  -- whatever the plan (EXECUTE: the lists are constants to the planner).
  EXECUTE format('SELECT array_agg(w.%1$I) FROM globalcart.%2$I w
                   WHERE w.%1$I <= $1
                     AND NOT EXISTS (SELECT 1 FROM globalcart.%3$I f
                                      WHERE f.order_id = w.order_id AND f.%1$I = w.%1$I AND f.order_ts = w.order_ts)',
                 v_source.key_column, 'work_' || p_source, v_source.fact_table)
    INTO v_not_here USING v_max_key;
  IF v_not_here IS NOT NULL THEN
    EXECUTE format('SELECT array_agg(DISTINCT f.%1$I) FROM globalcart.%2$I f WHERE f.%1$I = ANY ($1)',
                   v_source.key_column, v_source.fact_table)
      INTO v_keys USING v_not_here;
  END IF;
  moved := 0;
  IF v_keys IS NOT NULL THEN  -- (a statement on every shard saved when no key moved: the usual batch)
    EXECUTE format($sql$
      WITH moved AS (
        DELETE FROM globalcart.%1$I w WHERE w.%2$I = ANY ($3)
        RETURNING w.*
      )
      INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
      SELECT $1, $2, 'order_id_changed', to_jsonb(m) - 'order_ts' FROM moved m
      $sql$, 'work_' || p_source, v_source.key_column)
      USING p_run_id, p_source, v_keys;
    GET DIAGNOSTICS moved = ROW_COUNT;
  END IF;

  orphans := 0;
  deferred := 0;
  IF v_unplaced > 0 THEN  -- (a statement on every shard saved when every row's order is known)
    EXECUTE format($sql$
      WITH waiting AS (
        DELETE FROM globalcart.%1$I w WHERE w.order_ts IS NULL
        RETURNING w.*
      ), orphans AS (
        INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
        SELECT $1, $2, 'orphan', to_jsonb(x) - 'order_ts' FROM waiting x WHERE x.ingested_at <= $3
        RETURNING 1
      ), deferred AS (
        INSERT INTO globalcart.%2$I (%3$s, stg_id, ingested_at, deferrals) OVERRIDING SYSTEM VALUE
        SELECT %3$s, x.stg_id, x.ingested_at, x.deferrals + 1 FROM waiting x WHERE x.ingested_at > $3
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM orphans), (SELECT count(*) FROM deferred)
      $sql$, 'work_' || p_source, v_source.staging_table, v_columns)
      INTO orphans, deferred
      USING p_run_id, p_source, p_orphan_cutoff;
  END IF;

  -- the rows left whose key is new: above every stored key, or not found beside its order above
  EXECUTE format('SELECT count(*) FILTER (WHERE w.%1$I > $1 OR $1 IS NULL OR w.%1$I = ANY ($2)) FROM globalcart.%2$I w',
                 v_source.key_column, 'work_' || p_source)
    INTO new_keys USING v_max_key, coalesce(v_not_here, '{}');
END;
$$;
COMMENT ON FUNCTION globalcart.place_child_rows(text, bigint, timestamptz) IS
  'Refresh step shared by the order-grain children: reject keys moved to another order, defer rows whose order has not arrived (orphan once first staged at or before the cutoff); counts the new keys left.';
