-- globalcart.staged_rows(orphan_cutoff): what waits in staging, per source, in the order the
-- refresh applies the sources:
--   staged            rows not yet examined by a refresh (a source's backlog)
--   deferred          rows a refresh put back to wait for their order (order-grain children)
--   due               deferred rows the next refresh can settle: their order has been applied
--                     (e.g. a call bounded by max_rows_per_run did not reach them), or they
--                     were first staged at or before orphan_cutoff (orphans). Counted only
--                     when orphan_cutoff is given: one index probe per deferred row.
--   oldest_staged_at  the first-staged time (ingested_at) of the oldest row not deferred
-- One scan of each staging table. The refresh reads it to decide whether there is anything
-- to do and for the backlog it reports; globalcart.pipeline_health reads it too.
CREATE OR REPLACE FUNCTION globalcart.staged_rows(p_orphan_cutoff timestamptz DEFAULT NULL)
  RETURNS TABLE (source_name text, staged bigint, deferred bigint, due bigint, oldest_staged_at timestamptz)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog
AS $$
  SELECT 'customers', count(*), 0::bigint, 0::bigint, min(s.ingested_at) FROM globalcart.stg_customers s
  UNION ALL
  SELECT 'products', count(*), 0, 0, min(s.ingested_at) FROM globalcart.stg_products s
  UNION ALL
  SELECT 'orders', count(*), 0, 0, min(s.ingested_at) FROM globalcart.stg_orders s
  UNION ALL
  SELECT 'order_items', count(*) FILTER (WHERE s.deferrals = 0), count(*) FILTER (WHERE s.deferrals > 0),
         count(*) FILTER (WHERE p_orphan_cutoff IS NOT NULL AND s.deferrals > 0
                            AND (s.ingested_at <= p_orphan_cutoff
                                 OR EXISTS (SELECT 1 FROM globalcart.fact_orders o WHERE o.order_id = s.order_id))),
         min(s.ingested_at) FILTER (WHERE s.deferrals = 0)
    FROM globalcart.stg_order_items s
  UNION ALL
  SELECT 'payments', count(*) FILTER (WHERE s.deferrals = 0), count(*) FILTER (WHERE s.deferrals > 0),
         count(*) FILTER (WHERE p_orphan_cutoff IS NOT NULL AND s.deferrals > 0
                            AND (s.ingested_at <= p_orphan_cutoff
                                 OR EXISTS (SELECT 1 FROM globalcart.fact_orders o WHERE o.order_id = s.order_id))),
         min(s.ingested_at) FILTER (WHERE s.deferrals = 0)
    FROM globalcart.stg_payments s
  UNION ALL
  SELECT 'shipments', count(*) FILTER (WHERE s.deferrals = 0), count(*) FILTER (WHERE s.deferrals > 0),
         count(*) FILTER (WHERE p_orphan_cutoff IS NOT NULL AND s.deferrals > 0
                            AND (s.ingested_at <= p_orphan_cutoff
                                 OR EXISTS (SELECT 1 FROM globalcart.fact_orders o WHERE o.order_id = s.order_id))),
         min(s.ingested_at) FILTER (WHERE s.deferrals = 0)
    FROM globalcart.stg_shipments s
  UNION ALL
  SELECT 'returns', count(*) FILTER (WHERE s.deferrals = 0), count(*) FILTER (WHERE s.deferrals > 0),
         count(*) FILTER (WHERE p_orphan_cutoff IS NOT NULL AND s.deferrals > 0
                            AND (s.ingested_at <= p_orphan_cutoff
                                 OR EXISTS (SELECT 1 FROM globalcart.fact_orders o WHERE o.order_id = s.order_id))),
         min(s.ingested_at) FILTER (WHERE s.deferrals = 0)
    FROM globalcart.stg_returns s
  UNION ALL
  SELECT 'funnel_events', count(*), 0, 0, min(s.ingested_at) FROM globalcart.stg_funnel_events s
$$;
COMMENT ON FUNCTION globalcart.staged_rows(timestamptz) IS
  'Per source: rows staged and not yet examined, rows deferred (waiting for their order), deferred rows due for the orphan check, oldest staged time.';
