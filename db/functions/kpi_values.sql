-- globalcart.kpi_values(): the current value of every KPI of CONTRACT section 3, in contract
-- order (kpi_order 1-14). Money is USD: amount * dim_currency.usd_rate (a return is in its
-- order's currency). "Live" orders are those not CANCELLED; a session is a distinct
-- session_id; a ratio with a zero denominator is NULL. Values are unrounded. The funnel KPIs
-- (11-14) exist only when fact_funnel_events exists. Scans every fact.
CREATE OR REPLACE FUNCTION globalcart.kpi_values()
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_orders bigint; v_gmv numeric; v_net numeric; v_units bigint; v_returned bigint; v_delivered bigint;
  v_refunds numeric; v_shipped bigint; v_breached bigint; v_payments bigint; v_failed bigint;
  v_sla numeric;
BEGIN
  SELECT count(*), coalesce(sum(o.gross_amount * c.usd_rate), 0), coalesce(sum(o.net_amount * c.usd_rate), 0)
    INTO v_orders, v_gmv, v_net
    FROM globalcart.fact_orders o
    JOIN globalcart.dim_currency c ON c.currency_code = o.currency
   WHERE o.order_status <> 'CANCELLED';

  SELECT count(*) FILTER (WHERE o.order_status = 'RETURNED'),
         count(*) FILTER (WHERE o.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED'))
    INTO v_returned, v_delivered
    FROM globalcart.fact_orders o;

  SELECT coalesce(sum(i.quantity), 0) INTO v_units
    FROM globalcart.fact_order_items i
    JOIN globalcart.fact_orders o ON o.order_id = i.order_id
   WHERE o.order_status <> 'CANCELLED';

  SELECT coalesce(sum(r.refund_amount * c.usd_rate), 0) INTO v_refunds
    FROM globalcart.fact_returns r
    JOIN globalcart.fact_orders o ON o.order_id = r.order_id
    JOIN globalcart.dim_currency c ON c.currency_code = o.currency
   WHERE r.return_status = 'REFUNDED';

  SELECT count(*), count(*) FILTER (WHERE s.sla_breached_flag) INTO v_shipped, v_breached
    FROM globalcart.fact_shipments s WHERE s.delivered_ts IS NOT NULL;
  v_sla := v_breached::numeric / nullif(v_shipped, 0);

  SELECT count(*), count(*) FILTER (WHERE p.payment_status = 'FAILED') INTO v_payments, v_failed
    FROM globalcart.fact_payments p;

  RETURN QUERY VALUES
    (1, 'orders', v_orders::numeric),
    (2, 'gmv_usd', v_gmv),
    (3, 'net_revenue_usd', v_net - v_refunds),
    (4, 'aov_usd', v_net / nullif(v_orders, 0)),
    (5, 'units', v_units::numeric),
    (6, 'return_rate', v_returned::numeric / nullif(v_delivered, 0)),
    (7, 'refunds_usd', v_refunds),
    (8, 'sla_breach_rate', v_sla),
    (9, 'on_time_delivery_rate', 1 - v_sla),
    (10, 'payment_failure_rate', v_failed::numeric / nullif(v_payments, 0));

  IF to_regclass('globalcart.fact_funnel_events') IS NOT NULL THEN
    RETURN QUERY
      WITH sessions AS (
        SELECT bool_or(f.event_type = 'PURCHASE') AS purchased,
               bool_or(f.event_type = 'ADD_TO_CART') AS carted,
               bool_or(f.event_type = 'PAYMENT_FAILED') AS failed,
               max(f.cart_value_usd) AS cart_value
          FROM globalcart.fact_funnel_events f
         GROUP BY f.session_id
      ), totals AS (
        SELECT count(*) AS all_sessions,
               count(*) FILTER (WHERE s.purchased) AS purchased,
               count(*) FILTER (WHERE s.carted) AS carted,
               count(*) FILTER (WHERE s.carted AND NOT s.purchased) AS abandoned,
               coalesce(sum(s.cart_value) FILTER (WHERE s.failed AND NOT s.purchased), 0) AS lost_failures,
               coalesce(sum(s.cart_value) FILTER (WHERE s.carted AND NOT s.failed AND NOT s.purchased), 0)
                 AS lost_abandonment
          FROM sessions s
      )
      SELECT v.kpi_order, v.kpi_name, v.kpi_value
        FROM totals t
       CROSS JOIN LATERAL (VALUES
         (11, 'conversion_rate', t.purchased::numeric / nullif(t.all_sessions, 0)),
         (12, 'cart_abandonment_rate', t.abandoned::numeric / nullif(t.carted, 0)),
         (13, 'revenue_lost_due_to_failures', t.lost_failures),
         (14, 'revenue_lost_due_to_abandonment', t.lost_abandonment)) AS v(kpi_order, kpi_name, kpi_value);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_values() IS
  'Current value of every KPI of CONTRACT section 3 (USD, ratios NULL on an empty denominator), in contract order.';
