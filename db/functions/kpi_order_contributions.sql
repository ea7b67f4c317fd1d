-- globalcart.kpi_order_contributions(sign): adds to pg_temp.gc_kpi_order_delta what each order of
-- globalcart.work_kpi_orders (the orders a refresh batch touches) contributes to
-- globalcart.kpi_order_summary as the facts stand now, multiplied by sign: -1 before the batch is
-- applied (its old contribution), +1 after (its new one). One statement, driven by the batch's
-- order ids: one index probe into fact_orders (into each monthly partition: the batch's order ids
-- come without their months) and into one partition of each child per order (children carry
-- their order's order_ts), whatever the size of the warehouse. The per-order definition of the KPIs' partial state; rebuild_kpi_summaries()
-- computes the same from every order at once.
CREATE OR REPLACE FUNCTION globalcart.kpi_order_contributions(p_sign integer)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO pg_temp.gc_kpi_order_delta
        (order_day, country_code, channel, currency, orders, live_orders, gross_amount, net_amount, units,
         returned_orders, delivered_orders, refund_amount, delivered_shipments, breached_shipments,
         payments, failed_payments)
  SELECT (o.order_ts AT TIME ZONE 'UTC')::date, o.country_code, o.channel, o.currency,
         k.sign,
         k.sign * (o.order_status <> 'CANCELLED')::integer,
         k.sign * CASE WHEN o.order_status <> 'CANCELLED' THEN o.gross_amount ELSE 0 END,
         k.sign * CASE WHEN o.order_status <> 'CANCELLED' THEN o.net_amount ELSE 0 END,
         k.sign * CASE WHEN o.order_status <> 'CANCELLED' THEN coalesce(i.units, 0) ELSE 0 END,
         k.sign * (o.order_status = 'RETURNED')::integer,
         k.sign * (o.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED'))::integer,
         k.sign * coalesce(r.refund_amount, 0),
         k.sign * coalesce(s.delivered, 0),
         k.sign * coalesce(s.breached, 0),
         k.sign * coalesce(p.payments, 0),
         k.sign * coalesce(p.failed, 0)
    FROM globalcart.work_kpi_orders t
    JOIN globalcart.fact_orders o ON o.order_id = t.order_id
    -- a deleted order contributes nothing: its sign is 0 (a bucket that falls to 0 orders is dropped).
    -- (Not a filter on deleted_at: without statistics on it, in a fresh partition, the planner
    -- would guess 0.5 % of the rows and scan fact_orders in a nested loop.)
    CROSS JOIN LATERAL (SELECT CASE WHEN o.deleted_at IS NULL THEN p_sign ELSE 0 END AS sign) AS k
    LEFT JOIN LATERAL (SELECT sum(fi.quantity) AS units
                         FROM globalcart.fact_order_items fi WHERE fi.order_id = o.order_id AND fi.order_ts = o.order_ts
                                                                     AND fi.deleted_at IS NULL) AS i ON true
    LEFT JOIN LATERAL (SELECT sum(fr.refund_amount) FILTER (WHERE fr.return_status = 'REFUNDED') AS refund_amount
                         FROM globalcart.fact_returns fr WHERE fr.order_id = o.order_id AND fr.order_ts = o.order_ts
                                                                AND fr.deleted_at IS NULL) AS r ON true
    LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE fs.delivered_ts IS NOT NULL) AS delivered,
                              count(*) FILTER (WHERE fs.delivered_ts IS NOT NULL AND fs.sla_breached_flag) AS breached
                         FROM globalcart.fact_shipments fs WHERE fs.order_id = o.order_id AND fs.order_ts = o.order_ts
                                                                  AND fs.deleted_at IS NULL) AS s ON true
    LEFT JOIN LATERAL (SELECT count(*) AS payments, count(*) FILTER (WHERE fp.payment_status = 'FAILED') AS failed
                         FROM globalcart.fact_payments fp WHERE fp.order_id = o.order_id AND fp.order_ts = o.order_ts
                                                                 AND fp.deleted_at IS NULL) AS p ON true;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_order_contributions(integer) IS
  'Refresh step of the KPI summaries: the contribution of each order the batch touches (globalcart.work_kpi_orders) to kpi_order_summary, times sign, into pg_temp.gc_kpi_order_delta.';
