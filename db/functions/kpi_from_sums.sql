-- globalcart.kpi_from_sums(…): the fourteen KPIs of docs/contract.md §3, in contract order
-- (kpi_order 1-14), from the additive sums they are ratios of (the order-grain ratios by
-- globalcart.kpi_order_ratios, which the kpi_daily view uses too); kpi_values() (a slice, from the summaries) and kpi_values_as_of() (the warehouse at a
-- time, from the as-of functions) compute the sums and call it. Money is USD. A ratio with a zero
-- denominator is NULL. The funnel KPIs (11-14) are NULL when p_funnel is false (a slice by
-- country: a session has none) and absent when fact_funnel_events does not exist. Sums are exact;
-- trim_scale gives each one scale whatever way it was added up, so that a ratio of them is the
-- same number to the last digit.
CREATE OR REPLACE FUNCTION globalcart.kpi_from_sums(
    orders bigint, gross_usd numeric, net_usd numeric, units bigint, returned_orders bigint,
    delivered_orders bigint, refunds_usd numeric, delivered_shipments bigint, breached_shipments bigint,
    payments bigint, failed_payments bigint,
    sessions bigint, purchased_sessions bigint, carted_sessions bigint, abandoned_sessions bigint,
    lost_failures_usd numeric, lost_abandonment_usd numeric, p_funnel boolean)
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;  -- the ratios (globalcart.kpi_order_ratios, shared with the kpi_daily view)
BEGIN
  SELECT * INTO r
    FROM globalcart.kpi_order_ratios(kpi_from_sums.orders, kpi_from_sums.net_usd, kpi_from_sums.returned_orders,
                                     kpi_from_sums.delivered_orders, kpi_from_sums.delivered_shipments,
                                     kpi_from_sums.breached_shipments, kpi_from_sums.payments,
                                     kpi_from_sums.failed_payments);
  RETURN QUERY VALUES
    (1, 'orders', kpi_from_sums.orders::numeric),
    (2, 'gmv_usd', trim_scale(kpi_from_sums.gross_usd)),
    (3, 'net_revenue_usd', trim_scale(kpi_from_sums.net_usd - kpi_from_sums.refunds_usd)),
    (4, 'aov_usd', r.aov_usd),
    (5, 'units', kpi_from_sums.units::numeric),
    (6, 'return_rate', r.return_rate),
    (7, 'refunds_usd', trim_scale(kpi_from_sums.refunds_usd)),
    (8, 'sla_breach_rate', r.sla_breach_rate),
    (9, 'on_time_delivery_rate', r.on_time_delivery_rate),
    (10, 'payment_failure_rate', r.payment_failure_rate);

  IF to_regclass('globalcart.fact_funnel_events') IS NOT NULL THEN
    RETURN QUERY VALUES
      (11, 'conversion_rate',
       CASE WHEN p_funnel THEN kpi_from_sums.purchased_sessions::numeric / nullif(kpi_from_sums.sessions, 0) END),
      (12, 'cart_abandonment_rate',
       CASE WHEN p_funnel THEN kpi_from_sums.abandoned_sessions::numeric / nullif(kpi_from_sums.carted_sessions, 0) END),
      (13, 'revenue_lost_due_to_failures', CASE WHEN p_funnel THEN trim_scale(kpi_from_sums.lost_failures_usd) END),
      (14, 'revenue_lost_due_to_abandonment', CASE WHEN p_funnel THEN trim_scale(kpi_from_sums.lost_abandonment_usd) END);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_from_sums(bigint, numeric, numeric, bigint, bigint, bigint, numeric, bigint, bigint,
                                              bigint, bigint, bigint, bigint, bigint, bigint, numeric, numeric, boolean) IS
  'The fourteen KPIs (docs/contract.md §3) from their additive sums; used by kpi_values and kpi_values_as_of.';
