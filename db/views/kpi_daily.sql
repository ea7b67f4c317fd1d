-- globalcart.kpi_daily (docs/contract.md §3, "KPIs by slice"): one row per UTC day of order_ts × country
-- × channel with the order-grain KPIs (1-10) of the orders of that day, for BI tools, read from
-- globalcart.kpi_order_summary (the refresh keeps it): as cheap as the number of days. Money in
-- USD with today's dim_currency.usd_rate; ratios NULL on an empty denominator, by the same formulas
-- as every KPI read (globalcart.kpi_order_ratios). The counts beside
-- the ratios (delivered_orders, delivered_shipments, payments, …) let a BI tool add days up
-- into weeks or months correctly (sum the counts, then divide), never by averaging ratios.
CREATE OR REPLACE VIEW globalcart.kpi_daily AS
WITH d AS (
  SELECT s.order_day, s.country_code, s.channel,
         sum(s.live_orders) AS orders,
         trim_scale(sum(s.gross_amount * c.usd_rate)) AS gmv_usd,
         trim_scale(sum(s.net_amount * c.usd_rate)) AS net_usd,
         trim_scale(sum(s.refund_amount * c.usd_rate)) AS refunds_usd,
         sum(s.units) AS units,
         sum(s.returned_orders) AS returned_orders,
         sum(s.delivered_orders) AS delivered_orders,
         sum(s.delivered_shipments) AS delivered_shipments,
         sum(s.breached_shipments) AS breached_shipments,
         sum(s.payments) AS payments,
         sum(s.failed_payments) AS failed_payments
    FROM globalcart.kpi_order_summary s
    JOIN globalcart.dim_currency c ON c.currency_code = s.currency
   GROUP BY s.order_day, s.country_code, s.channel
)
SELECT d.order_day AS day, d.country_code, d.channel,
       d.orders,
       d.gmv_usd,
       trim_scale(d.net_usd - d.refunds_usd) AS net_revenue_usd,
       r.aov_usd,
       d.units,
       r.return_rate,
       d.refunds_usd,
       r.sla_breach_rate,
       r.on_time_delivery_rate,
       r.payment_failure_rate,
       d.net_usd, d.returned_orders, d.delivered_orders, d.delivered_shipments, d.breached_shipments,
       d.payments, d.failed_payments
  FROM d
 CROSS JOIN LATERAL globalcart.kpi_order_ratios(d.orders::bigint, d.net_usd, d.returned_orders::bigint,
                                                d.delivered_orders::bigint, d.delivered_shipments::bigint,
                                                d.breached_shipments::bigint, d.payments::bigint,
                                                d.failed_payments::bigint) AS r;
COMMENT ON VIEW globalcart.kpi_daily IS
  'Order-grain KPIs (1-10 of docs/contract.md §3) per UTC day of order_ts, country and channel, in USD, with the counts behind each ratio; read from kpi_order_summary.';
