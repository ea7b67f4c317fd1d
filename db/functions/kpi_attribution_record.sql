-- globalcart.kpi_attribution_record(run_id, revert): why the KPIs moved in this run
-- (docs/contract.md §8, docs/attribution.md), recorded in its transaction, after the KPI summaries
-- took the batch (globalcart.kpi_summaries_apply) and before the work tables go. Off when the
-- setting 'kpi_attribution' is off (the run's change is then outside_refresh to explain_kpis).
--
-- What each touched order contributed before and after the run is in pg_temp.gc_kpi_order_states
-- (side -1 and +1, globalcart.kpi_order_contributions); each touched session's state before and
-- after in pg_temp.gc_kpi_session_moves. The change of each order is split by cause — exactly, the
-- parts add up to its change — by walking from its old state to its new one one source at a time,
-- in the order the refresh applies them, each step's change going to its cause:
--   order_updates  the order's own columns (status, amounts, currency) of its new version — but a
--                  RETURNED status the batch's returns derive waits for the returns' step (it
--                  stays DELIVERED until then);
--   deletes        the order's tombstone (its deleted flag);
--   items, payments, shipments
--                  the sums of its items (units), payments (count, failed), shipments (delivered,
--                  late), tombstones of those rows included;
--   returns        the refunds of its returns, and the RETURNED status they derive.
-- An order with no state before the run is new_orders, whole; in a revert (p_revert) every change,
-- orders' and sessions', is reverts. Sessions' changes are funnel. Money is USD at the rates of now.
-- Each cause's row holds its running total over every run so far (globalcart.kpi_attribution),
-- and globalcart.kpi_run_sums the whole partial state the run leaves (globalcart.kpi_sums()).
CREATE OR REPLACE FUNCTION globalcart.kpi_attribution_record(p_run_id bigint, p_revert boolean DEFAULT false)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
  -- the orders before and after the run, matched by order_id: two sets of the batch's size, no index
  SET enable_hashjoin = on
AS $$
BEGIN
  IF NOT globalcart.etl_setting_boolean('kpi_attribution', true) THEN
    RETURN;
  END IF;

  WITH pairs AS (  -- each touched order, before (o_) and after (n_)
    SELECT o.order_id IS NOT NULL AS had_old, n.order_id IS NOT NULL AS has_new,
           o.currency AS o_currency, o.order_status AS o_status, o.deleted AS o_deleted, o.gross_amount AS o_gross,
           o.net_amount AS o_net, o.units AS o_units, o.refund_amount AS o_refund, o.delivered_shipments AS o_delivered,
           o.breached_shipments AS o_breached, o.payments AS o_payments, o.failed_payments AS o_failed,
           n.currency AS n_currency, n.order_status AS n_status, n.deleted AS n_deleted, n.gross_amount AS n_gross,
           n.net_amount AS n_net, n.units AS n_units, n.refund_amount AS n_refund, n.delivered_shipments AS n_delivered,
           n.breached_shipments AS n_breached, n.payments AS n_payments, n.failed_payments AS n_failed,
           -- the status after the order's own step: a RETURNED the batch's returns derived is theirs
           CASE WHEN n.order_status = 'RETURNED' AND o.order_status IS DISTINCT FROM 'RETURNED' AND n.returns
                THEN 'DELIVERED' ELSE n.order_status END AS m_status
      FROM (SELECT * FROM pg_temp.gc_kpi_order_states s WHERE s.side = -1) AS o
      FULL JOIN (SELECT * FROM pg_temp.gc_kpi_order_states s WHERE s.side = 1) AS n ON n.order_id = o.order_id
  ), walked AS (
    -- a stored order, not a revert: state k (0 = before, 6 = after) and each step that changes it;
    -- step j's change is state j minus state j-1, so state k is emitted +1 for step k, -1 for k+1
    SELECT c.cause, e.sign,
           CASE WHEN e.k >= 1 THEN p.n_currency ELSE p.o_currency END AS currency,
           CASE WHEN e.k = 0 THEN p.o_status WHEN e.k < 6 THEN p.m_status ELSE p.n_status END AS status,
           CASE WHEN e.k >= 2 THEN p.n_deleted ELSE p.o_deleted END AS deleted,
           CASE WHEN e.k >= 1 THEN p.n_gross ELSE p.o_gross END AS gross,
           CASE WHEN e.k >= 1 THEN p.n_net ELSE p.o_net END AS net,
           CASE WHEN e.k >= 3 THEN p.n_units ELSE p.o_units END AS units,
           CASE WHEN e.k >= 6 THEN p.n_refund ELSE p.o_refund END AS refund,
           CASE WHEN e.k >= 5 THEN p.n_delivered ELSE p.o_delivered END AS delivered,
           CASE WHEN e.k >= 5 THEN p.n_breached ELSE p.o_breached END AS breached,
           CASE WHEN e.k >= 4 THEN p.n_payments ELSE p.o_payments END AS payments,
           CASE WHEN e.k >= 4 THEN p.n_failed ELSE p.o_failed END AS failed
      FROM pairs p
     CROSS JOIN LATERAL (VALUES (1, 1, 1), (0, -1, 1), (2, 1, 2), (1, -1, 2), (3, 1, 3), (2, -1, 3),
                                (4, 1, 4), (3, -1, 4), (5, 1, 5), (4, -1, 5), (6, 1, 6), (5, -1, 6)) AS e(k, sign, step)
     CROSS JOIN LATERAL (SELECT (ARRAY['order_updates', 'deletes', 'items', 'payments', 'shipments', 'returns'])[e.step]
                                  AS cause,
                                (ARRAY[(p.o_currency, p.o_status, p.o_gross, p.o_net)
                                         IS DISTINCT FROM (p.n_currency, p.m_status, p.n_gross, p.n_net),
                                       p.o_deleted IS DISTINCT FROM p.n_deleted,
                                       p.o_units IS DISTINCT FROM p.n_units,
                                       (p.o_payments, p.o_failed) IS DISTINCT FROM (p.n_payments, p.n_failed),
                                       (p.o_delivered, p.o_breached) IS DISTINCT FROM (p.n_delivered, p.n_breached),
                                       (p.o_refund, p.m_status) IS DISTINCT FROM (p.n_refund, p.n_status)])[e.step]
                                  AS changed) AS c
     WHERE p.had_old AND p.has_new AND NOT p_revert AND c.changed
    UNION ALL
    -- a new order (no state before), a revert's orders, an order gone (only a revert removes one)
    SELECT x.cause, x.sign, x.currency, x.status, x.deleted, x.gross, x.net, x.units, x.refund, x.delivered,
           x.breached, x.payments, x.failed
      FROM pairs p
     CROSS JOIN LATERAL (VALUES
             (CASE WHEN p_revert THEN 'reverts' ELSE 'order_updates' END, -1, p.o_currency, p.o_status, p.o_deleted,
              p.o_gross, p.o_net, p.o_units, p.o_refund, p.o_delivered, p.o_breached, p.o_payments, p.o_failed,
              p.had_old),
             (CASE WHEN p_revert THEN 'reverts' ELSE 'new_orders' END, 1, p.n_currency, p.n_status, p.n_deleted,
              p.n_gross, p.n_net, p.n_units, p.n_refund, p.n_delivered, p.n_breached, p.n_payments, p.n_failed,
              p.has_new))
             AS x(cause, sign, currency, status, deleted, gross, net, units, refund, delivered, breached, payments,
                  failed, present)
     WHERE x.present AND (p_revert OR NOT (p.had_old AND p.has_new))
  ), orders AS (
    SELECT w.cause,
           sum(w.sign * c.live_orders) AS orders, sum(w.sign * c.gross_amount * r.usd_rate) AS gross_usd,
           sum(w.sign * c.net_amount * r.usd_rate) AS net_usd, sum(w.sign * c.units) AS units,
           sum(w.sign * c.returned_orders) AS returned_orders, sum(w.sign * c.delivered_orders) AS delivered_orders,
           sum(w.sign * c.refund_amount * r.usd_rate) AS refunds_usd,
           sum(w.sign * c.delivered_shipments) AS delivered_shipments,
           sum(w.sign * c.breached_shipments) AS breached_shipments, sum(w.sign * c.payments) AS payments,
           sum(w.sign * c.failed_payments) AS failed_payments
      FROM walked w
      JOIN globalcart.dim_currency r ON r.currency_code = w.currency
     CROSS JOIN LATERAL globalcart.kpi_order_contribution(w.status, w.deleted, w.gross, w.net, w.units, w.refund,
                                                          w.delivered, w.breached, w.payments, w.failed) AS c
     GROUP BY w.cause
  ), sessions AS (
    SELECT CASE WHEN p_revert THEN 'reverts' ELSE 'funnel' END AS cause,
           sum(m.sign * c.sessions) AS sessions, sum(m.sign * c.purchased_sessions) AS purchased_sessions,
           sum(m.sign * c.carted_sessions) AS carted_sessions, sum(m.sign * c.abandoned_sessions) AS abandoned_sessions,
           sum(m.sign * c.lost_failures_usd) AS lost_failures_usd,
           sum(m.sign * c.lost_abandonment_usd) AS lost_abandonment_usd
      FROM (SELECT -1 AS sign, m.old_purchased AS purchased, m.old_carted AS carted,
                   m.old_payment_failed AS payment_failed, m.old_max_cart_value_usd AS max_cart_value_usd
              FROM pg_temp.gc_kpi_session_moves m WHERE m.had_old
            UNION ALL
            SELECT 1, m.purchased, m.carted, m.payment_failed, m.max_cart_value_usd
              FROM pg_temp.gc_kpi_session_moves m WHERE m.has_new) AS m
     CROSS JOIN LATERAL globalcart.kpi_session_contribution(m.purchased, m.carted, m.payment_failed,
                                                            m.max_cart_value_usd) AS c
    HAVING count(*) > 0
  ), changes AS (
    SELECT coalesce(o.cause, s.cause) AS cause,
           ROW(coalesce(o.orders, 0), coalesce(o.gross_usd, 0), coalesce(o.net_usd, 0), coalesce(o.units, 0),
               coalesce(o.returned_orders, 0), coalesce(o.delivered_orders, 0), coalesce(o.refunds_usd, 0),
               coalesce(o.delivered_shipments, 0), coalesce(o.breached_shipments, 0), coalesce(o.payments, 0),
               coalesce(o.failed_payments, 0), coalesce(s.sessions, 0), coalesce(s.purchased_sessions, 0),
               coalesce(s.carted_sessions, 0), coalesce(s.abandoned_sessions, 0), coalesce(s.lost_failures_usd, 0),
               coalesce(s.lost_abandonment_usd, 0))::globalcart.kpi_partial AS change
      FROM orders o
      FULL JOIN sessions s ON s.cause = o.cause
  )
  INSERT INTO globalcart.kpi_attribution (cause, run_id, total)
  SELECT c.cause, p_run_id, globalcart.kpi_partial_add(prev.total, c.change)
    FROM changes c
    LEFT JOIN LATERAL (SELECT a.total FROM globalcart.kpi_attribution a
                        WHERE a.cause = c.cause ORDER BY a.run_id DESC LIMIT 1) AS prev ON true
   WHERE c.change IS DISTINCT FROM ROW(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)::globalcart.kpi_partial;

  INSERT INTO globalcart.kpi_run_sums (run_id, after) VALUES (p_run_id, globalcart.kpi_sums());
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_attribution_record(bigint, boolean) IS
  'Refresh and revert step (docs/contract.md §8): the run''s change to the KPIs'' partial state split by cause into '
  'kpi_attribution (running totals), and the partial state it leaves into kpi_run_sums.';
