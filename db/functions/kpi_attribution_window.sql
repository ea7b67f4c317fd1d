-- globalcart.kpi_attribution_window(after_run, upto_run): each cause's change to the KPIs' partial
-- state over the runs after `after_run` and up to `upto_run` (NULL: no bound on that side), from the
-- running totals of globalcart.kpi_attribution — two index lookups a cause, whatever the number of
-- runs: its total at the later bound minus the one at the earlier (NULL after_run: from the first run). Causes in the contract's order
-- (docs/contract.md §8); one that did not change in the window is left out. Used by explain_kpis
-- and explain_kpis_since.
CREATE OR REPLACE FUNCTION globalcart.kpi_attribution_window(p_after_run bigint, p_upto_run bigint,
                                                             OUT causes text[], OUT changes globalcart.kpi_partial[])
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT array_agg(c.cause ORDER BY c.ord), array_agg(globalcart.kpi_partial_add(h.total, l.total, -1) ORDER BY c.ord)
    FROM unnest(ARRAY['new_orders', 'order_updates', 'deletes', 'items', 'payments', 'shipments', 'returns', 'funnel',
                      'reverts']) WITH ORDINALITY AS c(cause, ord)
    JOIN LATERAL (SELECT a.total FROM globalcart.kpi_attribution a
                   WHERE a.cause = c.cause AND (p_upto_run IS NULL OR a.run_id <= p_upto_run)
                   ORDER BY a.run_id DESC LIMIT 1) AS h ON true
    LEFT JOIN LATERAL (SELECT a.total FROM globalcart.kpi_attribution a
                        WHERE a.cause = c.cause AND a.run_id <= p_after_run
                        ORDER BY a.run_id DESC LIMIT 1) AS l ON true
   WHERE h.total IS DISTINCT FROM l.total
$$;
COMMENT ON FUNCTION globalcart.kpi_attribution_window(bigint, bigint) IS
  'Each cause''s change to the KPIs'' partial state over the runs (after_run, upto_run] (docs/contract.md §8).';
