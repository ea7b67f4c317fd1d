-- globalcart.rebuild_kpi_summaries(): recomputes kpi_order_summary, kpi_session_state and
-- kpi_funnel_summary from the facts — what the refresh keeps incrementally, computed at once
-- from every order and every event (hash joins over whole tables: minutes at ten million
-- orders). For a warehouse whose facts were changed outside the refresh, and to check the
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
  LOCK TABLE globalcart.etl_refresh_lock IN EXCLUSIVE MODE;

  DELETE FROM globalcart.kpi_order_summary;
  INSERT INTO globalcart.kpi_order_summary
        (order_day, country_code, channel, currency, orders, live_orders, gross_amount, net_amount, units,
         returned_orders, delivered_orders, refund_amount, delivered_shipments, breached_shipments,
         payments, failed_payments)
  SELECT (o.order_ts AT TIME ZONE 'UTC')::date, o.country_code, o.channel, o.currency,
         count(*),
         count(*) FILTER (WHERE o.order_status <> 'CANCELLED'),
         coalesce(sum(o.gross_amount) FILTER (WHERE o.order_status <> 'CANCELLED'), 0),
         coalesce(sum(o.net_amount) FILTER (WHERE o.order_status <> 'CANCELLED'), 0),
         coalesce(sum(i.units) FILTER (WHERE o.order_status <> 'CANCELLED'), 0),
         count(*) FILTER (WHERE o.order_status = 'RETURNED'),
         count(*) FILTER (WHERE o.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED')),
         coalesce(sum(r.refund_amount), 0),
         coalesce(sum(s.delivered), 0),
         coalesce(sum(s.breached), 0),
         coalesce(sum(p.payments), 0),
         coalesce(sum(p.failed), 0)
    FROM globalcart.fact_orders o
    LEFT JOIN (SELECT fi.order_id, sum(fi.quantity) AS units
                 FROM globalcart.fact_order_items fi WHERE fi.deleted_at IS NULL GROUP BY fi.order_id) AS i ON i.order_id = o.order_id
    LEFT JOIN (SELECT fr.order_id, sum(fr.refund_amount) AS refund_amount
                 FROM globalcart.fact_returns fr WHERE fr.return_status = 'REFUNDED' AND fr.deleted_at IS NULL
                GROUP BY fr.order_id) AS r ON r.order_id = o.order_id
    LEFT JOIN (SELECT fs.order_id, count(*) AS delivered, count(*) FILTER (WHERE fs.sla_breached_flag) AS breached
                 FROM globalcart.fact_shipments fs WHERE fs.delivered_ts IS NOT NULL AND fs.deleted_at IS NULL
                GROUP BY fs.order_id) AS s ON s.order_id = o.order_id
    LEFT JOIN (SELECT fp.order_id, count(*) AS payments, count(*) FILTER (WHERE fp.payment_status = 'FAILED') AS failed
                 FROM globalcart.fact_payments fp WHERE fp.deleted_at IS NULL GROUP BY fp.order_id) AS p ON p.order_id = o.order_id
   WHERE o.deleted_at IS NULL  -- (deleted rows count nothing)
   GROUP BY 1, 2, 3, 4;
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
         count(*),
         count(*) FILTER (WHERE k.purchased),
         count(*) FILTER (WHERE k.carted),
         count(*) FILTER (WHERE k.carted AND NOT k.purchased),
         coalesce(sum(k.max_cart_value_usd) FILTER (WHERE k.payment_failed AND NOT k.purchased), 0),
         coalesce(sum(k.max_cart_value_usd) FILTER (WHERE k.carted AND NOT k.payment_failed AND NOT k.purchased), 0)
    FROM globalcart.kpi_session_state k
   GROUP BY 1, 2;
  GET DIAGNOSTICS session_buckets = ROW_COUNT;
END;
$$;
COMMENT ON FUNCTION globalcart.rebuild_kpi_summaries() IS
  'Recomputes the KPI summaries (kpi_order_summary, kpi_session_state, kpi_funnel_summary) from the facts, under the refresh''s lock; the refresh keeps them equal to this.';
