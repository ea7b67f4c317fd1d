-- globalcart.kpi_values_of(partial, funnel): the fourteen KPIs (globalcart.kpi_from_sums) of a
-- partial state (globalcart.kpi_partial) — what kpi_values, snapshot_kpis and explain_kpis show.
CREATE OR REPLACE FUNCTION globalcart.kpi_values_of(p globalcart.kpi_partial, p_funnel boolean DEFAULT true)
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM globalcart.kpi_from_sums((p).orders, (p).gross_usd, (p).net_usd, (p).units, (p).returned_orders,
                                         (p).delivered_orders, (p).refunds_usd, (p).delivered_shipments,
                                         (p).breached_shipments, (p).payments, (p).failed_payments, (p).sessions,
                                         (p).purchased_sessions, (p).carted_sessions, (p).abandoned_sessions,
                                         (p).lost_failures_usd, (p).lost_abandonment_usd, p_funnel)
$$;
COMMENT ON FUNCTION globalcart.kpi_values_of(globalcart.kpi_partial, boolean) IS
  'The fourteen KPIs (globalcart.kpi_from_sums) of a partial state (globalcart.kpi_partial).';
