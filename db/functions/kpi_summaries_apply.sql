-- globalcart.kpi_summaries_apply(recompute_sessions): the second half of keeping the KPI summaries, run by the
-- refresh after the batch is applied (derived state included), in the same transaction.
--   1. Orders: their state (globalcart.kpi_order_state; apply_orders and derive_returned_orders
--      wrote the orders' own columns) takes the new sums of the children of the kinds the batch
--      brought for each order — only those are read, in the order's one partition; with
--      p_recompute (a revert changed the facts directly) the orders' state is read anew from the
--      facts, children of every kind. Then the new contribution of the orders noted by
--      kpi_summaries_begin() (kpi_order_contributions(+1)), summed with the old one per bucket,
--      is added to kpi_order_summary; a bucket left with no order is deleted. A late return
--      touches the one bucket of its order.
--   2. Sessions: the new state of each session the batch appended events to is its old state
--      (kpi_session_state, read once) merged with those events — first event, flags, greatest
--      cart value all merge, the funnel being append-only — and its contribution in
--      kpi_funnel_summary moves from its old state's day and channel to its new one's. With
--      p_recompute_sessions (a revert, or fact retention dropped events), the sessions noted in
--      pg_temp.gc_kpi_sessions are recomputed from the events left instead, and a session with
--      none left is removed. Both ways, old and new state side by side in
--      pg_temp.gc_kpi_session_moves, then one statement for the summary and the state.
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
  IF p_recompute_sessions THEN
    -- (a revert: the touched orders' state from the facts, by order_id — in every month, as a
    -- revert may move an order back — and every kind of child read again)
    DELETE FROM globalcart.kpi_order_state s USING globalcart.work_kpi_orders t WHERE s.order_id = t.order_id;
    INSERT INTO globalcart.kpi_order_state
           (order_id, order_ts, country_code, channel, currency, order_status, deleted, gross_amount, net_amount,
            units, refund_amount, delivered_shipments, breached_shipments, payments, failed_payments)
    SELECT f.order_id, f.order_ts, f.country_code, f.channel, f.currency, f.order_status, f.deleted_at IS NOT NULL,
           f.gross_amount, f.net_amount, 0, 0, 0, 0, 0, 0
      FROM globalcart.work_kpi_orders t
      JOIN globalcart.fact_orders f ON f.order_id = t.order_id;
    UPDATE globalcart.work_kpi_orders t SET items = true, payments = true, shipments = true, returns = true;
  END IF;

  -- The children's sums of a fresh order (its id above every one stored before the batch): every
  -- child it has is one the batch applied, the newest version of its key in the work tables (one
  -- row a key: isolate_failing_rows keeps it so) — added up from them, no fact read (the bulk path).
  UPDATE globalcart.kpi_order_state s
     SET units = x.units, refund_amount = x.refund_amount, delivered_shipments = x.delivered_shipments,
         breached_shipments = x.breached_shipments, payments = x.payments, failed_payments = x.failed_payments
    FROM (SELECT c.order_id, sum(c.units) AS units, sum(c.refund_amount) AS refund_amount,
                 sum(c.delivered) AS delivered_shipments, sum(c.breached) AS breached_shipments,
                 sum(c.payments) AS payments, sum(c.failed) AS failed_payments
            FROM (SELECT w.order_id, w.quantity AS units, 0 AS refund_amount, 0 AS delivered, 0 AS breached,
                         0 AS payments, 0 AS failed
                    FROM globalcart.work_order_items w WHERE NOT w.deleted
                  UNION ALL
                  SELECT w.order_id, 0, CASE WHEN w.return_status = 'REFUNDED' THEN w.refund_amount ELSE 0 END,
                         0, 0, 0, 0
                    FROM globalcart.work_returns w WHERE NOT w.deleted
                  UNION ALL
                  SELECT w.order_id, 0, 0, (w.delivered_ts IS NOT NULL)::integer,
                         (w.delivered_ts IS NOT NULL AND w.delivered_ts > w.promised_ts)::integer, 0, 0
                    FROM globalcart.work_shipments w WHERE NOT w.deleted
                  UNION ALL
                  SELECT w.order_id, 0, 0, 0, 0, 1, (w.payment_status = 'FAILED')::integer
                    FROM globalcart.work_payments w WHERE NOT w.deleted) AS c
           GROUP BY c.order_id) AS x
    JOIN globalcart.work_kpi_orders t ON t.order_id = x.order_id AND t.fresh
   WHERE s.order_id = x.order_id;

  -- The children's sums of an order stored before: the kinds the batch brought, each read again
  -- in the order's one partition (a kind it did not bring is not read: its sums stand).
  UPDATE globalcart.kpi_order_state s
     SET units = x.units, refund_amount = x.refund_amount, delivered_shipments = x.delivered_shipments,
         breached_shipments = x.breached_shipments, payments = x.payments, failed_payments = x.failed_payments
    FROM (SELECT o.order_id,
                 CASE WHEN t.items THEN coalesce(i.units, 0) ELSE o.units END AS units,
                 CASE WHEN t.returns THEN coalesce(r.refund_amount, 0) ELSE o.refund_amount END AS refund_amount,
                 CASE WHEN t.shipments THEN coalesce(h.delivered, 0) ELSE o.delivered_shipments END AS delivered_shipments,
                 CASE WHEN t.shipments THEN coalesce(h.breached, 0) ELSE o.breached_shipments END AS breached_shipments,
                 CASE WHEN t.payments THEN coalesce(p.payments, 0) ELSE o.payments END AS payments,
                 CASE WHEN t.payments THEN coalesce(p.failed, 0) ELSE o.failed_payments END AS failed_payments
            FROM globalcart.work_kpi_orders t
            JOIN globalcart.kpi_order_state o ON o.order_id = t.order_id
            LEFT JOIN LATERAL (SELECT sum(fi.quantity) AS units
                                 FROM globalcart.fact_order_items fi
                                WHERE t.items AND fi.order_id = o.order_id AND fi.order_ts = o.order_ts
                                  AND fi.deleted_at IS NULL) AS i ON true
            LEFT JOIN LATERAL (SELECT sum(fr.refund_amount) FILTER (WHERE fr.return_status = 'REFUNDED') AS refund_amount
                                 FROM globalcart.fact_returns fr
                                WHERE t.returns AND fr.order_id = o.order_id AND fr.order_ts = o.order_ts
                                  AND fr.deleted_at IS NULL) AS r ON true
            LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE fs.delivered_ts IS NOT NULL) AS delivered,
                                      count(*) FILTER (WHERE fs.delivered_ts IS NOT NULL AND fs.sla_breached_flag) AS breached
                                 FROM globalcart.fact_shipments fs
                                WHERE t.shipments AND fs.order_id = o.order_id AND fs.order_ts = o.order_ts
                                  AND fs.deleted_at IS NULL) AS h ON true
            LEFT JOIN LATERAL (SELECT count(*) AS payments, count(*) FILTER (WHERE fp.payment_status = 'FAILED') AS failed
                                 FROM globalcart.fact_payments fp
                                WHERE t.payments AND fp.order_id = o.order_id AND fp.order_ts = o.order_ts
                                  AND fp.deleted_at IS NULL) AS p ON true
           WHERE NOT t.fresh AND (t.items OR t.payments OR t.shipments OR t.returns)) AS x
   WHERE s.order_id = x.order_id
     AND (s.units, s.refund_amount, s.delivered_shipments, s.breached_shipments, s.payments, s.failed_payments)
         IS DISTINCT FROM (x.units, x.refund_amount, x.delivered_shipments, x.breached_shipments, x.payments,
                           x.failed_payments);

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

  -- Sessions: each touched session's state before and after the batch, side by side, into
  -- pg_temp.gc_kpi_session_moves (had_old: it had a state; has_new: an event of it is left); then
  -- one statement moves their contributions in kpi_funnel_summary and writes kpi_session_state.
  IF p_recompute_sessions THEN
    -- from every event left of each session noted in pg_temp.gc_kpi_sessions (a revert, or fact
    -- retention dropped some)
    INSERT INTO pg_temp.gc_kpi_session_moves
           (session_id, has_new, first_event_ts, first_event_id, channel, purchased, carted, payment_failed,
            max_cart_value_usd)
    SELECT e.session_id, true,
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
    INSERT INTO pg_temp.gc_kpi_session_moves (session_id, has_new)
    SELECT t.session_id, false FROM pg_temp.gc_kpi_sessions t
     WHERE NOT EXISTS (SELECT 1 FROM pg_temp.gc_kpi_session_moves m WHERE m.session_id = t.session_id);
    UPDATE pg_temp.gc_kpi_session_moves m
       SET had_old = true, old_first_event_ts = o.first_event_ts, old_channel = o.channel, old_purchased = o.purchased,
           old_carted = o.carted, old_payment_failed = o.payment_failed, old_max_cart_value_usd = o.max_cart_value_usd
      FROM globalcart.kpi_session_state o WHERE o.session_id = m.session_id;
  ELSE
    -- the funnel is append-only: a session's new state is its old one (read once) merged with the
    -- events this batch appended (globalcart.work_funnel_events holds exactly those) — no event
    -- read back. First event, flags and greatest cart value all merge. Two statements: the batch's
    -- sessions first (each one's first event and, over all its events, the flags: one sort of the
    -- batch), then their old state merged in by session_id — so that on Citus, where the work
    -- table is distributed and the state is the coordinator's own, the batch comes to the state and
    -- not the whole state to the batch.
    INSERT INTO pg_temp.gc_kpi_session_moves
           (session_id, has_new, first_event_ts, first_event_id, channel, purchased, carted, payment_failed,
            max_cart_value_usd)
    SELECT DISTINCT ON (w.session_id) w.session_id, true, w.event_ts, w.event_id, w.channel,
           bool_or(w.event_type = 'PURCHASE') OVER s,
           bool_or(w.event_type = 'ADD_TO_CART') OVER s,
           bool_or(w.event_type = 'PAYMENT_FAILED') OVER s,
           max(w.cart_value_usd) OVER s
      FROM globalcart.work_funnel_events w
    WINDOW s AS (PARTITION BY w.session_id)
     ORDER BY w.session_id, w.event_ts, w.event_id;
    ANALYZE pg_temp.gc_kpi_session_moves;  -- (its size, for the join below)
    UPDATE pg_temp.gc_kpi_session_moves m
       SET had_old = true, old_first_event_ts = o.first_event_ts, old_channel = o.channel, old_purchased = o.purchased,
           old_carted = o.carted, old_payment_failed = o.payment_failed, old_max_cart_value_usd = o.max_cart_value_usd,
           -- (SET reads the row as it was: m's are the batch's own values) the first event: the
           -- batch's if it is earlier than the stored one
           first_event_ts = CASE WHEN (m.first_event_ts, m.first_event_id) < (o.first_event_ts, o.first_event_id)
                                 THEN m.first_event_ts ELSE o.first_event_ts END,
           first_event_id = CASE WHEN (m.first_event_ts, m.first_event_id) < (o.first_event_ts, o.first_event_id)
                                 THEN m.first_event_id ELSE o.first_event_id END,
           channel = CASE WHEN (m.first_event_ts, m.first_event_id) < (o.first_event_ts, o.first_event_id)
                          THEN m.channel ELSE o.channel END,
           purchased = o.purchased OR m.purchased, carted = o.carted OR m.carted,
           payment_failed = o.payment_failed OR m.payment_failed,
           max_cart_value_usd = greatest(o.max_cart_value_usd, m.max_cart_value_usd)
      FROM globalcart.kpi_session_state o
     WHERE o.session_id = m.session_id;
  END IF;

  WITH moves AS (
    SELECT -1 AS sign, m.old_first_event_ts AS first_event_ts, m.old_channel AS channel, m.old_purchased AS purchased,
           m.old_carted AS carted, m.old_payment_failed AS payment_failed, m.old_max_cart_value_usd AS max_cart_value_usd
      FROM pg_temp.gc_kpi_session_moves m WHERE m.had_old
    UNION ALL
    SELECT 1, m.first_event_ts, m.channel, m.purchased, m.carted, m.payment_failed, m.max_cart_value_usd
      FROM pg_temp.gc_kpi_session_moves m WHERE m.has_new
  ), changes AS (
    SELECT (m.first_event_ts AT TIME ZONE 'UTC')::date AS session_day, m.channel,
           sum(m.sign * c.sessions) AS sessions,
           sum(m.sign * c.purchased_sessions) AS purchased_sessions,
           sum(m.sign * c.carted_sessions) AS carted_sessions,
           sum(m.sign * c.abandoned_sessions) AS abandoned_sessions,
           sum(m.sign * c.lost_failures_usd) AS lost_failures_usd,
           sum(m.sign * c.lost_abandonment_usd) AS lost_abandonment_usd
      FROM moves m
     CROSS JOIN LATERAL globalcart.kpi_session_contribution(m.purchased, m.carted, m.payment_failed,
                                                            m.max_cart_value_usd) AS c
     GROUP BY 1, 2
  ), gone AS (  -- no event left (fact retention dropped them all): the state goes
    DELETE FROM globalcart.kpi_session_state k
     USING pg_temp.gc_kpi_session_moves m
     WHERE k.session_id = m.session_id AND NOT m.has_new
  ), state AS (
    INSERT INTO globalcart.kpi_session_state AS k
    SELECT m.session_id, m.first_event_ts, m.first_event_id, m.channel, m.purchased, m.carted, m.payment_failed,
           m.max_cart_value_usd
      FROM pg_temp.gc_kpi_session_moves m WHERE m.has_new
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
