-- globalcart.kpi_order_contribution(…): the per-order KPI rule, written once — what one order adds
-- to the order-grain partial state (globalcart.kpi_order_summary's columns, in the order's
-- currency) given its status, whether it is deleted, its amounts, and what its items, payments,
-- shipments and returns add up to (their deleted rows left out: globalcart.kpi_order_state's
-- columns). docs/contract.md §3: live orders are those not CANCELLED; a deleted order counts nothing, not
-- even as an order of its bucket (a bucket whose orders are all deleted is no bucket).
--
-- Every place that turns orders into KPI sums calls it: the refresh (old contribution out, new in:
-- kpi_summaries_begin / kpi_summaries_apply), rebuild_kpi_summaries, the parts of a day that
-- kpi_values reads from the facts, and kpi_values_as_of. A set-returning SQL function of one
-- SELECT, immutable, with no SET clause: the planner inlines it into each of those queries (a SET
-- clause would stop that), so it costs what the expressions cost; it names no table.
CREATE OR REPLACE FUNCTION globalcart.kpi_order_contribution(
    p_order_status text, p_deleted boolean, p_gross_amount numeric, p_net_amount numeric, p_units bigint,
    p_refund_amount numeric, p_delivered_shipments bigint, p_breached_shipments bigint, p_payments bigint,
    p_failed_payments bigint)
  RETURNS TABLE (orders integer, live_orders integer, gross_amount numeric, net_amount numeric, units bigint,
                 returned_orders integer, delivered_orders integer, refund_amount numeric,
                 delivered_shipments bigint, breached_shipments bigint, payments bigint, failed_payments bigint)
  LANGUAGE sql IMMUTABLE
AS $$
  SELECT x.counted::integer,
         (x.counted AND x.live)::integer,
         CASE WHEN x.counted AND x.live THEN coalesce($3, 0) ELSE 0 END,
         CASE WHEN x.counted AND x.live THEN coalesce($4, 0) ELSE 0 END,
         CASE WHEN x.counted AND x.live THEN coalesce($5, 0) ELSE 0 END,
         (x.counted AND $1 = 'RETURNED')::integer,
         (x.counted AND $1 IN ('DELIVERED', 'COMPLETED', 'RETURNED'))::integer,
         CASE WHEN x.counted THEN coalesce($6, 0) ELSE 0 END,
         CASE WHEN x.counted THEN coalesce($7, 0) ELSE 0 END,
         CASE WHEN x.counted THEN coalesce($8, 0) ELSE 0 END,
         CASE WHEN x.counted THEN coalesce($9, 0) ELSE 0 END,
         CASE WHEN x.counted THEN coalesce($10, 0) ELSE 0 END
    FROM (SELECT NOT coalesce($2, false) AS counted, $1 <> 'CANCELLED' AS live) AS x
$$;
COMMENT ON FUNCTION globalcart.kpi_order_contribution(text, boolean, numeric, numeric, bigint, numeric, bigint, bigint,
                                                       bigint, bigint) IS
  'The per-order KPI rule (docs/contract.md §3): one order''s contribution to kpi_order_summary from its status, deleted flag, '
  'amounts and children''s sums; inlined into the refresh, the rebuild and the KPI reads.';
