-- globalcart.kpi_order_contributions(sign): adds to pg_temp.gc_kpi_order_delta what each order of
-- globalcart.work_kpi_orders (the orders a refresh, or a revert, touches) contributes to
-- globalcart.kpi_order_summary as its state (globalcart.kpi_order_state) holds it now, multiplied by
-- sign: -1 before the batch is applied (its old contribution), +1 after (its new one). The state
-- read is kept in pg_temp.gc_kpi_order_states (side = sign), where the attribution
-- (globalcart.kpi_attribution_record) finds each order before and after. The rule is
-- globalcart.kpi_order_contribution's; the facts are not read: one index probe of the state per
-- order (a fresh order — its id above every stored one — has no old contribution: not looked up).
CREATE OR REPLACE FUNCTION globalcart.kpi_order_contributions(p_sign integer)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO pg_temp.gc_kpi_order_states
        (order_id, side, returns, order_ts, country_code, channel, currency, order_status, deleted, gross_amount,
         net_amount, units, refund_amount, delivered_shipments, breached_shipments, payments, failed_payments)
  SELECT s.order_id, p_sign, t.returns, s.order_ts, s.country_code, s.channel, s.currency, s.order_status, s.deleted,
         s.gross_amount, s.net_amount, s.units, s.refund_amount, s.delivered_shipments, s.breached_shipments,
         s.payments, s.failed_payments
    FROM globalcart.work_kpi_orders t
    JOIN globalcart.kpi_order_state s ON s.order_id = t.order_id
   WHERE p_sign > 0 OR NOT t.fresh;

  INSERT INTO pg_temp.gc_kpi_order_delta
        (order_day, country_code, channel, currency, orders, live_orders, gross_amount, net_amount, units,
         returned_orders, delivered_orders, refund_amount, delivered_shipments, breached_shipments,
         payments, failed_payments)
  SELECT (s.order_ts AT TIME ZONE 'UTC')::date, s.country_code, s.channel, s.currency,
         p_sign * c.orders, p_sign * c.live_orders, p_sign * c.gross_amount, p_sign * c.net_amount, p_sign * c.units,
         p_sign * c.returned_orders, p_sign * c.delivered_orders, p_sign * c.refund_amount,
         p_sign * c.delivered_shipments, p_sign * c.breached_shipments, p_sign * c.payments, p_sign * c.failed_payments
    FROM pg_temp.gc_kpi_order_states s
   CROSS JOIN LATERAL globalcart.kpi_order_contribution(s.order_status, s.deleted, s.gross_amount, s.net_amount, s.units,
                                                        s.refund_amount, s.delivered_shipments, s.breached_shipments,
                                                        s.payments, s.failed_payments) AS c
   WHERE s.side = p_sign;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_order_contributions(integer) IS
  'Refresh step of the KPI summaries: the contribution of each order the batch touches (globalcart.work_kpi_orders), from its state in kpi_order_state (kept in pg_temp.gc_kpi_order_states), times sign, into pg_temp.gc_kpi_order_delta.';
