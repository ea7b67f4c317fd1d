-- globalcart.kpi_order_ratios(…): the ratio KPIs of the order grain (docs/contract.md §3), written once,
-- from the additive sums they are ratios of: aov_usd, return_rate, sla_breach_rate,
-- on_time_delivery_rate, payment_failure_rate. A zero denominator gives NULL. kpi_from_sums (every
-- KPI read: kpi_values, kpi_values_as_of, snapshots) and the kpi_daily view call it; a
-- set-returning SQL function of one SELECT with no SET clause and no table, which the planner
-- inlines (like the per-order rule, globalcart.kpi_order_contribution).
CREATE OR REPLACE FUNCTION globalcart.kpi_order_ratios(
    p_orders bigint, p_net_usd numeric, p_returned_orders bigint, p_delivered_orders bigint,
    p_delivered_shipments bigint, p_breached_shipments bigint, p_payments bigint, p_failed_payments bigint)
  RETURNS TABLE (aov_usd numeric, return_rate numeric, sla_breach_rate numeric, on_time_delivery_rate numeric,
                 payment_failure_rate numeric)
  LANGUAGE sql IMMUTABLE
AS $$
  SELECT trim_scale($2) / nullif($1, 0),
         $3::numeric / nullif($4, 0),
         $6::numeric / nullif($5, 0),
         1 - $6::numeric / nullif($5, 0),
         $8::numeric / nullif($7, 0)
$$;
COMMENT ON FUNCTION globalcart.kpi_order_ratios(bigint, numeric, bigint, bigint, bigint, bigint, bigint, bigint) IS
  'The order-grain ratio KPIs (docs/contract.md §3) from their sums; NULL on a zero denominator. Used by kpi_from_sums and kpi_daily.';
