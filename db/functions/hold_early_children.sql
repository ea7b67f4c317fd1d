-- globalcart.hold_early_children(source, fact, key, run_id, orphan_cutoff): the step that
-- the four order-grain children (order_items, payments, shipments, returns) share, run by
-- their apply_<source>() after dedup, on pg_temp.gc_win_<source>:
--   1. a row whose key is stored under another order is rejected 'order_id_changed'
--      (an item, payment, shipment or return never moves to another order);
--   2. a row whose order is not in fact_orders waits: it goes back into staging as it was
--      staged — same stg_id, so it keeps its place in the queue (earliest staged first), same
--      ingested_at, so the orphan timeout counts from its first staging — with its deferrals
--      count raised by one; or, when it was first staged at or before orphan_cutoff (now -
--      etl_settings 'orphan_timeout'), it is rejected 'orphan'.
-- Both leave gc_win_<source> with only the rows to upsert. Two set-based statements; the
-- table names differ per source, hence format() (names from the caller, quoted with %I).
-- Dropped first: its last input was named p_now before 0002, which CREATE OR REPLACE cannot rename.
DROP FUNCTION IF EXISTS globalcart.hold_early_children(text, text, text, bigint, timestamptz);
CREATE OR REPLACE FUNCTION globalcart.hold_early_children(
    p_source text, p_fact text, p_key text, p_run_id bigint, p_orphan_cutoff timestamptz,
    OUT moved bigint, OUT orphans bigint, OUT deferred bigint)
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
-- It writes (DELETE, INSERT) through EXECUTE, which plpgsql_check cannot see into, so its
-- volatility hint does not apply:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_columns text;  -- the staging table's business columns
BEGIN
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
    FROM pg_attribute a
   WHERE a.attrelid = format('globalcart.%I', 'stg_' || p_source)::regclass
     AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT IN ('stg_id', 'ingested_at', 'deferrals');

  EXECUTE format($sql$
    WITH moved AS (
      DELETE FROM pg_temp.%1$I w
      WHERE EXISTS (SELECT 1 FROM globalcart.%2$I f WHERE f.%3$I = w.%3$I AND f.order_id <> w.order_id)
      RETURNING w.*
    )
    INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
    SELECT $1, $2, 'order_id_changed', to_jsonb(m) FROM moved m
    $sql$, 'gc_win_' || p_source, p_fact, p_key)
    USING p_run_id, p_source;
  GET DIAGNOSTICS moved = ROW_COUNT;

  EXECUTE format($sql$
    WITH waiting AS (
      DELETE FROM pg_temp.%1$I w
      WHERE NOT EXISTS (SELECT 1 FROM globalcart.fact_orders o WHERE o.order_id = w.order_id)
      RETURNING w.*
    ), orphans AS (
      INSERT INTO globalcart.etl_rejects (run_id, source_name, reason, record)
      SELECT $1, $2, 'orphan', to_jsonb(x) FROM waiting x WHERE x.ingested_at <= $3
      RETURNING 1
    ), deferred AS (
      INSERT INTO globalcart.%2$I (%3$s, stg_id, ingested_at, deferrals) OVERRIDING SYSTEM VALUE
      SELECT %3$s, x.stg_id, x.ingested_at, x.deferrals + 1 FROM waiting x WHERE x.ingested_at > $3
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM orphans), (SELECT count(*) FROM deferred)
    $sql$, 'gc_win_' || p_source, 'stg_' || p_source, v_columns)
    INTO orphans, deferred
    USING p_run_id, p_source, p_orphan_cutoff;
END;
$$;
COMMENT ON FUNCTION globalcart.hold_early_children(text, text, text, bigint, timestamptz) IS
  'Refresh step shared by the order-grain children: reject keys moved to another order, defer rows whose order has not arrived (orphan once first staged at or before the cutoff).';
