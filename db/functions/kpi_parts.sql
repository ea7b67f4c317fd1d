-- globalcart.kpi_parts(partial): each of the fourteen KPIs of docs/contract.md §3 as what it is made
-- of: a sum (n, d NULL) or a ratio n ÷ d of two sums — the same definitions as
-- globalcart.kpi_from_sums, which computes their values (on_time_delivery_rate = 1 − breached ÷
-- delivered is (delivered − breached) ÷ delivered). Linear in its argument, so it turns a change of
-- the partial state into the change of each numerator and denominator: what globalcart.explain_kpis
-- splits a ratio's change by (docs/contract.md §8).
CREATE OR REPLACE FUNCTION globalcart.kpi_parts(p globalcart.kpi_partial)
  RETURNS TABLE (kpi_order integer, kpi_name text, n numeric, d numeric)
  LANGUAGE sql IMMUTABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  VALUES (1, 'orders', (p).orders::numeric, NULL::numeric),
         (2, 'gmv_usd', (p).gross_usd, NULL),
         (3, 'net_revenue_usd', (p).net_usd - (p).refunds_usd, NULL),
         (4, 'aov_usd', (p).net_usd, (p).orders::numeric),
         (5, 'units', (p).units::numeric, NULL),
         (6, 'return_rate', (p).returned_orders::numeric, (p).delivered_orders::numeric),
         (7, 'refunds_usd', (p).refunds_usd, NULL),
         (8, 'sla_breach_rate', (p).breached_shipments::numeric, (p).delivered_shipments::numeric),
         (9, 'on_time_delivery_rate', ((p).delivered_shipments - (p).breached_shipments)::numeric,
          (p).delivered_shipments::numeric),
         (10, 'payment_failure_rate', (p).failed_payments::numeric, (p).payments::numeric),
         (11, 'conversion_rate', (p).purchased_sessions::numeric, (p).sessions::numeric),
         (12, 'cart_abandonment_rate', (p).abandoned_sessions::numeric, (p).carted_sessions::numeric),
         (13, 'revenue_lost_due_to_failures', (p).lost_failures_usd, NULL),
         (14, 'revenue_lost_due_to_abandonment', (p).lost_abandonment_usd, NULL)
$$;
COMMENT ON FUNCTION globalcart.kpi_parts(globalcart.kpi_partial) IS
  'Each KPI as a sum or a ratio of sums of the partial state (docs/contract.md §3); linear, so it splits a change too.';
