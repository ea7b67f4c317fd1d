-- globalcart.kpi_partial_add(a, b, sign): a + sign × b, field by field, for the KPIs' partial state
-- (globalcart.kpi_partial) and changes to it; a NULL side counts as nothing. Used by the attribution
-- (globalcart.kpi_attribution_record, globalcart.explain_kpis).
CREATE OR REPLACE FUNCTION globalcart.kpi_partial_add(a globalcart.kpi_partial, b globalcart.kpi_partial,
                                                      sign integer DEFAULT 1)
  RETURNS globalcart.kpi_partial
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ROW(coalesce((a).orders, 0) + sign * coalesce((b).orders, 0),
             coalesce((a).gross_usd, 0) + sign * coalesce((b).gross_usd, 0),
             coalesce((a).net_usd, 0) + sign * coalesce((b).net_usd, 0),
             coalesce((a).units, 0) + sign * coalesce((b).units, 0),
             coalesce((a).returned_orders, 0) + sign * coalesce((b).returned_orders, 0),
             coalesce((a).delivered_orders, 0) + sign * coalesce((b).delivered_orders, 0),
             coalesce((a).refunds_usd, 0) + sign * coalesce((b).refunds_usd, 0),
             coalesce((a).delivered_shipments, 0) + sign * coalesce((b).delivered_shipments, 0),
             coalesce((a).breached_shipments, 0) + sign * coalesce((b).breached_shipments, 0),
             coalesce((a).payments, 0) + sign * coalesce((b).payments, 0),
             coalesce((a).failed_payments, 0) + sign * coalesce((b).failed_payments, 0),
             coalesce((a).sessions, 0) + sign * coalesce((b).sessions, 0),
             coalesce((a).purchased_sessions, 0) + sign * coalesce((b).purchased_sessions, 0),
             coalesce((a).carted_sessions, 0) + sign * coalesce((b).carted_sessions, 0),
             coalesce((a).abandoned_sessions, 0) + sign * coalesce((b).abandoned_sessions, 0),
             coalesce((a).lost_failures_usd, 0) + sign * coalesce((b).lost_failures_usd, 0),
             coalesce((a).lost_abandonment_usd, 0) + sign * coalesce((b).lost_abandonment_usd, 0)
         )::globalcart.kpi_partial
$$;
COMMENT ON FUNCTION globalcart.kpi_partial_add(globalcart.kpi_partial, globalcart.kpi_partial, integer) IS
  'a + sign × b for the KPIs'' partial state (globalcart.kpi_partial); NULL counts as nothing.';
