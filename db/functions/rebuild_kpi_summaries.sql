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
         count(*) FILTER (WHERE o.deleted_at IS NULL),
         count(*) FILTER (WHERE o.deleted_at IS NULL AND o.order_status <> 'CANCELLED'),
         coalesce(sum(o.gross_amount) FILTER (WHERE o.deleted_at IS NULL AND o.order_status <> 'CANCELLED'), 0),
         coalesce(sum(o.net_amount) FILTER (WHERE o.deleted_at IS NULL AND o.order_status <> 'CANCELLED'), 0),
         coalesce(sum(i.units) FILTER (WHERE o.deleted_at IS NULL AND o.order_status <> 'CANCELLED'), 0),
         count(*) FILTER (WHERE o.deleted_at IS NULL AND o.order_status = 'RETURNED'),
         count(*) FILTER (WHERE o.deleted_at IS NULL AND o.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED')),
         coalesce(sum(r.refund_amount) FILTER (WHERE o.deleted_at IS NULL), 0),
         coalesce(sum(s.delivered) FILTER (WHERE o.deleted_at IS NULL), 0),
         coalesce(sum(s.breached) FILTER (WHERE o.deleted_at IS NULL), 0),
         coalesce(sum(p.payments) FILTER (WHERE o.deleted_at IS NULL), 0),
         coalesce(sum(p.failed) FILTER (WHERE o.deleted_at IS NULL), 0)
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
                 FROM globalcart.fact_payments fp GROUP BY fp.order_id) AS p ON p.order_id = o.order_id
   GROUP BY 1, 2, 3, 4
  -- Deleted rows count nothing: left out inside each aggregate, never by a WHERE on a fact — the
  -- planner has no statistics on deleted_at in a fresh partition and would guess 0.5 % of its rows
  -- (a bucket of deleted orders only is no bucket, as the refresh drops a bucket that falls to 0)
  HAVING count(*) FILTER (WHERE o.deleted_at IS NULL) > 0;
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
