-- globalcart.rebuild_kpi_summaries(): recomputes kpi_order_state, kpi_order_summary,
-- kpi_session_state and kpi_funnel_summary from the facts — what the refresh keeps incrementally,
-- computed at once from every order and every event, with the same per-order and per-session rules
-- (globalcart.kpi_order_contribution, globalcart.kpi_session_contribution); hash joins over whole
-- tables: minutes at ten million orders. For a warehouse whose facts were changed outside the refresh, and to check the
-- summaries (they must not change). Waits for a running refresh (it takes the refresh's lock) and
-- replaces the rows in one transaction: readers see the old summaries until it commits.
-- Returns the number of rows of each table.
CREATE OR REPLACE FUNCTION globalcart.rebuild_kpi_summaries(
    OUT order_buckets bigint, OUT sessions bigint, OUT session_buckets bigint)
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET work_mem = '256MB'
AS $$
BEGIN
  PERFORM globalcart.citus_explain_guard();  -- (auto_explain on a Citus coordinator)
  LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE;

  -- every order's state: its own columns and its children's sums (deleted children left out)
  DELETE FROM globalcart.kpi_order_state;
  INSERT INTO globalcart.kpi_order_state
        (order_id, order_ts, country_code, channel, currency, order_status, deleted, gross_amount, net_amount,
         units, refund_amount, delivered_shipments, breached_shipments, payments, failed_payments)
  SELECT o.order_id, o.order_ts, o.country_code, o.channel, o.currency, o.order_status, o.deleted_at IS NOT NULL,
         o.gross_amount, o.net_amount, coalesce(i.units, 0), coalesce(r.refund_amount, 0), coalesce(s.delivered, 0),
         coalesce(s.breached, 0), coalesce(p.payments, 0), coalesce(p.failed, 0)
    FROM globalcart.fact_orders o
    LEFT JOIN (SELECT fi.order_id, sum(fi.quantity) FILTER (WHERE fi.deleted_at IS NULL) AS units
                 FROM globalcart.fact_order_items fi GROUP BY fi.order_id) AS i ON i.order_id = o.order_id
    LEFT JOIN (SELECT fr.order_id, sum(fr.refund_amount) FILTER (WHERE fr.deleted_at IS NULL) AS refund_amount
                 FROM globalcart.fact_returns fr WHERE fr.return_status = 'REFUNDED'
                GROUP BY fr.order_id) AS r ON r.order_id = o.order_id
    LEFT JOIN (SELECT fs.order_id, count(*) FILTER (WHERE fs.deleted_at IS NULL) AS delivered,
                      count(*) FILTER (WHERE fs.deleted_at IS NULL AND fs.sla_breached_flag) AS breached
                 FROM globalcart.fact_shipments fs WHERE fs.delivered_ts IS NOT NULL
                GROUP BY fs.order_id) AS s ON s.order_id = o.order_id
    LEFT JOIN (SELECT fp.order_id, count(*) FILTER (WHERE fp.deleted_at IS NULL) AS payments,
                      count(*) FILTER (WHERE fp.deleted_at IS NULL AND fp.payment_status = 'FAILED') AS failed
                 FROM globalcart.fact_payments fp GROUP BY fp.order_id) AS p ON p.order_id = o.order_id;

  -- the buckets: the orders' contributions (globalcart.kpi_order_contribution) added up; a bucket of
  -- deleted orders only is no bucket, as the refresh drops a bucket that falls to 0 orders
  DELETE FROM globalcart.kpi_order_summary;
  INSERT INTO globalcart.kpi_order_summary
        (order_day, country_code, channel, currency, orders, live_orders, gross_amount, net_amount, units,
         returned_orders, delivered_orders, refund_amount, delivered_shipments, breached_shipments,
         payments, failed_payments)
  SELECT (o.order_ts AT TIME ZONE 'UTC')::date, o.country_code, o.channel, o.currency,
         sum(c.orders), sum(c.live_orders), sum(c.gross_amount), sum(c.net_amount), sum(c.units), sum(c.returned_orders),
         sum(c.delivered_orders), sum(c.refund_amount), sum(c.delivered_shipments), sum(c.breached_shipments),
         sum(c.payments), sum(c.failed_payments)
    FROM globalcart.kpi_order_state o
   CROSS JOIN LATERAL globalcart.kpi_order_contribution(o.order_status, o.deleted, o.gross_amount, o.net_amount, o.units,
                                                        o.refund_amount, o.delivered_shipments, o.breached_shipments,
                                                        o.payments, o.failed_payments) AS c
   GROUP BY 1, 2, 3, 4
  HAVING sum(c.orders) > 0;
  GET DIAGNOSTICS order_buckets = ROW_COUNT;

  DELETE FROM globalcart.kpi_session_state;
  INSERT INTO globalcart.kpi_session_state
        (session_id, first_event_ts, first_event_id, channel, purchased, carted, payment_failed, max_cart_value_usd)
  SELECT e.session_id,
         min(e.event_ts),
         (array_agg(e.event_id ORDER BY e.event_ts, e.event_id))[1],
         (array_agg(e.channel ORDER BY e.event_ts, e.event_id))[1],
         bool_or(e.event_type = 'PURCHASE'),
         bool_or(e.event_type = 'ADD_TO_CART'),
         bool_or(e.event_type = 'PAYMENT_FAILED'),
         max(e.cart_value_usd)
    FROM globalcart.fact_funnel_events e
   GROUP BY e.session_id;
  GET DIAGNOSTICS sessions = ROW_COUNT;

  DELETE FROM globalcart.kpi_funnel_summary;
  INSERT INTO globalcart.kpi_funnel_summary
        (session_day, channel, sessions, purchased_sessions, carted_sessions, abandoned_sessions,
         lost_failures_usd, lost_abandonment_usd)
  SELECT (k.first_event_ts AT TIME ZONE 'UTC')::date, k.channel,
         sum(c.sessions), sum(c.purchased_sessions), sum(c.carted_sessions), sum(c.abandoned_sessions),
         sum(c.lost_failures_usd), sum(c.lost_abandonment_usd)
    FROM globalcart.kpi_session_state k
   CROSS JOIN LATERAL globalcart.kpi_session_contribution(k.purchased, k.carted, k.payment_failed,
                                                          k.max_cart_value_usd) AS c
   GROUP BY 1, 2;
  GET DIAGNOSTICS session_buckets = ROW_COUNT;
END;
$$;
COMMENT ON FUNCTION globalcart.rebuild_kpi_summaries() IS
  'Recomputes the KPI summaries (kpi_order_summary, kpi_session_state, kpi_funnel_summary) from the facts, under the refresh''s lock; the refresh keeps them equal to this.';
