-- globalcart.kpi_summaries_apply(recompute_sessions): the second half of keeping the KPI summaries, run by the
-- refresh after the batch is applied (derived state included), in the same transaction.
--   1. Orders: adds the new contribution of the orders noted by kpi_summaries_begin()
--      (kpi_order_contributions(+1)), sums old and new per bucket and adds the difference to
--      kpi_order_summary; a bucket left with no order is deleted. A late return touches the one
--      bucket of its order.
--   2. Sessions: the new state of each session the batch appended events to is its old state
--      (kpi_session_state) merged with those events — first event, flags, greatest cart value
--      all merge, the funnel being append-only — and its contribution in kpi_funnel_summary moves
--      from its old state's day and channel to its new one's. With p_recompute_sessions (fact
--      retention dropped events), the sessions noted in pg_temp.gc_kpi_sessions are recomputed
--      from the events left instead, and a session with none left is removed.
-- Returns the number of summary rows written.
CREATE OR REPLACE FUNCTION globalcart.kpi_summaries_apply(p_recompute_sessions boolean DEFAULT false)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_orders bigint;
  v_sessions bigint;
  v_days date[];           -- buckets left empty, to delete
  v_countries char(2)[];
  v_channels text[];
  v_currencies char(3)[];
BEGIN
  PERFORM globalcart.kpi_order_contributions(1);

  WITH changes AS (
    SELECT d.order_day, d.country_code, d.channel, d.currency,
           sum(d.orders) AS orders, sum(d.live_orders) AS live_orders, sum(d.gross_amount) AS gross_amount,
           sum(d.net_amount) AS net_amount, sum(d.units) AS units, sum(d.returned_orders) AS returned_orders,
           sum(d.delivered_orders) AS delivered_orders, sum(d.refund_amount) AS refund_amount,
           sum(d.delivered_shipments) AS delivered_shipments, sum(d.breached_shipments) AS breached_shipments,
           sum(d.payments) AS payments, sum(d.failed_payments) AS failed_payments
      FROM pg_temp.gc_kpi_order_delta d
     GROUP BY d.order_day, d.country_code, d.channel, d.currency
  ), written AS (
    INSERT INTO globalcart.kpi_order_summary AS s
    SELECT c.* FROM changes c
     WHERE (c.orders, c.live_orders, c.gross_amount, c.net_amount, c.units, c.returned_orders, c.delivered_orders,
            c.refund_amount, c.delivered_shipments, c.breached_shipments, c.payments, c.failed_payments)
           IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ON CONFLICT (order_day, country_code, channel, currency) DO UPDATE
      SET orders = s.orders + EXCLUDED.orders, live_orders = s.live_orders + EXCLUDED.live_orders,
          gross_amount = s.gross_amount + EXCLUDED.gross_amount, net_amount = s.net_amount + EXCLUDED.net_amount,
          units = s.units + EXCLUDED.units, returned_orders = s.returned_orders + EXCLUDED.returned_orders,
          delivered_orders = s.delivered_orders + EXCLUDED.delivered_orders,
          refund_amount = s.refund_amount + EXCLUDED.refund_amount,
          delivered_shipments = s.delivered_shipments + EXCLUDED.delivered_shipments,
          breached_shipments = s.breached_shipments + EXCLUDED.breached_shipments,
          payments = s.payments + EXCLUDED.payments, failed_payments = s.failed_payments + EXCLUDED.failed_payments
    RETURNING s.order_day, s.country_code, s.channel, s.currency, s.orders
  )
  SELECT count(*), array_agg(w.order_day) FILTER (WHERE w.orders = 0), array_agg(w.country_code) FILTER (WHERE w.orders = 0),
         array_agg(w.channel) FILTER (WHERE w.orders = 0), array_agg(w.currency) FILTER (WHERE w.orders = 0)
    INTO v_orders, v_days, v_countries, v_channels, v_currencies
    FROM written w;
  -- (a row written by a statement cannot be deleted by the same statement)
  DELETE FROM globalcart.kpi_order_summary s
   USING unnest(v_days, v_countries, v_channels, v_currencies) AS e(order_day, country_code, channel, currency)
   WHERE s.order_day = e.order_day AND s.country_code = e.country_code AND s.channel = e.channel
     AND s.currency = e.currency AND s.orders = 0;

  -- Sessions: their new state into pg_temp.gc_kpi_session_new, the sessions touched into
  -- pg_temp.gc_kpi_sessions; then their old state (kpi_session_state) out, the new one in.
  IF p_recompute_sessions THEN
    -- from every event left of each session noted (fact retention dropped some)
    INSERT INTO pg_temp.gc_kpi_session_new
    SELECT e.session_id,
           min(e.event_ts),
           (array_agg(e.event_id ORDER BY e.event_ts, e.event_id))[1],
           (array_agg(e.channel ORDER BY e.event_ts, e.event_id))[1],
           bool_or(e.event_type = 'PURCHASE'),
           bool_or(e.event_type = 'ADD_TO_CART'),
           bool_or(e.event_type = 'PAYMENT_FAILED'),
           max(e.cart_value_usd)
      FROM pg_temp.gc_kpi_sessions t  -- (keyed: each session once)
      JOIN globalcart.fact_funnel_events e ON e.session_id = t.session_id
     GROUP BY e.session_id;
  ELSE
    -- the funnel is append-only: a session's new state is its old one merged with the events
    -- this batch appended (globalcart.work_funnel_events holds exactly those) — no event read back
    INSERT INTO pg_temp.gc_kpi_session_new
    SELECT b.session_id,
           CASE WHEN o.session_id IS NULL OR (b.first_event_ts, b.first_event_id) < (o.first_event_ts, o.first_event_id)
                THEN b.first_event_ts ELSE o.first_event_ts END,
           CASE WHEN o.session_id IS NULL OR (b.first_event_ts, b.first_event_id) < (o.first_event_ts, o.first_event_id)
                THEN b.first_event_id ELSE o.first_event_id END,
           CASE WHEN o.session_id IS NULL OR (b.first_event_ts, b.first_event_id) < (o.first_event_ts, o.first_event_id)
                THEN b.channel ELSE o.channel END,
           coalesce(o.purchased, false) OR b.purchased,
           coalesce(o.carted, false) OR b.carted,
           coalesce(o.payment_failed, false) OR b.payment_failed,
           greatest(o.max_cart_value_usd, b.max_cart_value_usd)
      FROM (SELECT w.session_id,
                   min(w.event_ts) AS first_event_ts,
                   (array_agg(w.event_id ORDER BY w.event_ts, w.event_id))[1] AS first_event_id,
                   (array_agg(w.channel ORDER BY w.event_ts, w.event_id))[1] AS channel,
                   bool_or(w.event_type = 'PURCHASE') AS purchased,
                   bool_or(w.event_type = 'ADD_TO_CART') AS carted,
                   bool_or(w.event_type = 'PAYMENT_FAILED') AS payment_failed,
                   max(w.cart_value_usd) AS max_cart_value_usd
              FROM globalcart.work_funnel_events w
             GROUP BY w.session_id) AS b
      LEFT JOIN globalcart.kpi_session_state o ON o.session_id = b.session_id;
    INSERT INTO pg_temp.gc_kpi_sessions (session_id) SELECT n.session_id FROM pg_temp.gc_kpi_session_new n;
  END IF;

  WITH fresh AS (
    SELECT n.* FROM pg_temp.gc_kpi_session_new n
  ), old AS (
    SELECT k.* FROM pg_temp.gc_kpi_sessions t JOIN globalcart.kpi_session_state k ON k.session_id = t.session_id
  ), gone AS (  -- no event left (fact retention dropped them all): the state goes
    DELETE FROM globalcart.kpi_session_state k
     USING pg_temp.gc_kpi_sessions t
     WHERE p_recompute_sessions  -- (appending events never empties a session)
       AND k.session_id = t.session_id
       AND NOT EXISTS (SELECT 1 FROM pg_temp.gc_kpi_session_new n WHERE n.session_id = k.session_id)
  ), moves AS (
    SELECT -1 AS sign, o.first_event_ts, o.channel, o.purchased, o.carted, o.payment_failed, o.max_cart_value_usd
      FROM old o
    UNION ALL
    SELECT 1, f.first_event_ts, f.channel, f.purchased, f.carted, f.payment_failed, f.max_cart_value_usd
      FROM fresh f
  ), changes AS (
    SELECT (m.first_event_ts AT TIME ZONE 'UTC')::date AS session_day, m.channel,
           sum(m.sign) AS sessions,
           sum(m.sign * m.purchased::integer) AS purchased_sessions,
           sum(m.sign * m.carted::integer) AS carted_sessions,
           sum(m.sign * (m.carted AND NOT m.purchased)::integer) AS abandoned_sessions,
           sum(m.sign * CASE WHEN m.payment_failed AND NOT m.purchased THEN coalesce(m.max_cart_value_usd, 0) ELSE 0 END)
             AS lost_failures_usd,
           sum(m.sign * CASE WHEN m.carted AND NOT m.payment_failed AND NOT m.purchased
                             THEN coalesce(m.max_cart_value_usd, 0) ELSE 0 END) AS lost_abandonment_usd
      FROM moves m
     GROUP BY 1, 2
  ), state AS (
    INSERT INTO globalcart.kpi_session_state AS k
    SELECT f.* FROM fresh f
    ON CONFLICT (session_id) DO UPDATE
      SET first_event_ts = EXCLUDED.first_event_ts, first_event_id = EXCLUDED.first_event_id,
          channel = EXCLUDED.channel, purchased = EXCLUDED.purchased, carted = EXCLUDED.carted,
          payment_failed = EXCLUDED.payment_failed, max_cart_value_usd = EXCLUDED.max_cart_value_usd
      WHERE (k.first_event_ts, k.first_event_id, k.channel, k.purchased, k.carted, k.payment_failed,
             k.max_cart_value_usd)
            IS DISTINCT FROM (EXCLUDED.first_event_ts, EXCLUDED.first_event_id, EXCLUDED.channel, EXCLUDED.purchased,
                              EXCLUDED.carted, EXCLUDED.payment_failed, EXCLUDED.max_cart_value_usd)
  ), written AS (
    INSERT INTO globalcart.kpi_funnel_summary AS s
    SELECT c.* FROM changes c
     WHERE (c.sessions, c.purchased_sessions, c.carted_sessions, c.abandoned_sessions, c.lost_failures_usd,
            c.lost_abandonment_usd) IS DISTINCT FROM (0, 0, 0, 0, 0, 0)
    ON CONFLICT (session_day, channel) DO UPDATE
      SET sessions = s.sessions + EXCLUDED.sessions,
          purchased_sessions = s.purchased_sessions + EXCLUDED.purchased_sessions,
          carted_sessions = s.carted_sessions + EXCLUDED.carted_sessions,
          abandoned_sessions = s.abandoned_sessions + EXCLUDED.abandoned_sessions,
          lost_failures_usd = s.lost_failures_usd + EXCLUDED.lost_failures_usd,
          lost_abandonment_usd = s.lost_abandonment_usd + EXCLUDED.lost_abandonment_usd
    RETURNING s.session_day, s.channel, s.sessions
  )
  SELECT count(*), array_agg(w.session_day) FILTER (WHERE w.sessions = 0),
         array_agg(w.channel) FILTER (WHERE w.sessions = 0)
    INTO v_sessions, v_days, v_channels
    FROM written w;
  DELETE FROM globalcart.kpi_funnel_summary s
   USING unnest(v_days, v_channels) AS e(session_day, channel)
   WHERE s.session_day = e.session_day AND s.channel = e.channel AND s.sessions = 0;

  RETURN v_orders + v_sessions;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_summaries_apply(boolean) IS
  'Refresh step of the KPI summaries, after the batch: adds the difference of the touched orders'' and sessions'' contributions to kpi_order_summary and kpi_funnel_summary, keeps kpi_session_state.';
