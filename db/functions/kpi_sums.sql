-- globalcart.kpi_sums(from_ts, to_ts, country_code, channel): the additive sums the KPIs of
-- docs/contract.md §3 are made of (globalcart.kpi_partial), over a slice — what
-- globalcart.kpi_values turns into the fourteen KPIs (globalcart.kpi_from_sums), what a snapshot
-- and every run keep for the attribution (docs/contract.md §8). NULL means no bound.
--   - Order-grain sums count the orders with order_ts in [from_ts, to_ts) of that country and
--     channel, with all their items, payments, shipments and returns.
--   - Funnel sums count the sessions whose first event is in [from_ts, to_ts), in that channel
--     (the channel of the first event).
-- Served from the summaries the refresh keeps (kpi_order_summary, kpi_funnel_summary): the whole
-- UTC days of the range are read from them, so the cost follows the number of days. A bound
-- that is not a UTC midnight leaves a part of a day at either end, which is computed from the
-- orders of that part (an index range of fact_orders by order_ts) with their state
-- (kpi_order_state) and from kpi_session_state (sessions by first event), by the same per-order
-- and per-session rules as the summaries (kpi_order_contribution, kpi_session_contribution).
-- Money is USD with today's dim_currency.usd_rate; an empty slice (from_ts not before to_ts, a
-- country or channel with no data) gives zeros.
CREATE OR REPLACE FUNCTION globalcart.kpi_sums(
    from_ts timestamptz DEFAULT NULL, to_ts timestamptz DEFAULT NULL,
    country_code char(2) DEFAULT NULL, channel text DEFAULT NULL)
  RETURNS globalcart.kpi_partial
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  -- index ranges of a day at most: JIT compiling them would cost more than running them
  SET jit = off
AS $$
DECLARE
  v_from timestamptz := kpi_sums.from_ts;
  v_to timestamptz := kpi_sums.to_ts;
  v_country char(2) := kpi_sums.country_code;
  v_channel text := kpi_sums.channel;
  v_day_from date;   -- whole days [v_day_from, v_day_to) from the summaries (NULL: unbounded)
  v_day_to date;
  v_whole boolean;   -- any whole day in the range
  v_edges tstzrange[] := '{}'::tstzrange[];  -- parts of days, from the facts
  v_edge tstzrange;
  o record;          -- order-grain sums, USD
  f record;          -- funnel sums
  e record;
BEGIN
  SELECT 0::bigint AS orders, 0::numeric AS gross, 0::numeric AS net, 0::bigint AS units, 0::bigint AS returned,
         0::bigint AS delivered, 0::numeric AS refunds, 0::bigint AS shipped, 0::bigint AS breached,
         0::bigint AS payments, 0::bigint AS failed
    INTO o;
  SELECT 0::bigint AS sessions, 0::bigint AS purchased, 0::bigint AS carted, 0::bigint AS abandoned,
         0::numeric AS lost_failures, 0::numeric AS lost_abandonment
    INTO f;

  IF v_from IS NULL OR v_to IS NULL OR v_from < v_to THEN
    -- whole UTC days inside [v_from, v_to)
    v_day_from := (v_from AT TIME ZONE 'UTC')::date;
    IF (v_day_from::timestamp AT TIME ZONE 'UTC') < v_from THEN
      v_day_from := v_day_from + 1;
    END IF;
    v_day_to := (v_to AT TIME ZONE 'UTC')::date;
    v_whole := v_day_from IS NULL OR v_day_to IS NULL OR v_day_from < v_day_to;
    IF NOT v_whole THEN
      v_edges := ARRAY[tstzrange(v_from, v_to, '[)')];
    ELSE
      IF v_from IS NOT NULL AND v_from < (v_day_from::timestamp AT TIME ZONE 'UTC') THEN
        v_edges := v_edges || tstzrange(v_from, v_day_from::timestamp AT TIME ZONE 'UTC', '[)');
      END IF;
      IF v_to IS NOT NULL AND v_to > (v_day_to::timestamp AT TIME ZONE 'UTC') THEN
        v_edges := v_edges || tstzrange(v_day_to::timestamp AT TIME ZONE 'UTC', v_to, '[)');
      END IF;
    END IF;

    IF v_whole THEN
      SELECT coalesce(sum(s.live_orders), 0)::bigint AS orders,
             coalesce(sum(s.gross_amount * c.usd_rate), 0) AS gross,
             coalesce(sum(s.net_amount * c.usd_rate), 0) AS net,
             coalesce(sum(s.units), 0)::bigint AS units,
             coalesce(sum(s.returned_orders), 0)::bigint AS returned,
             coalesce(sum(s.delivered_orders), 0)::bigint AS delivered,
             coalesce(sum(s.refund_amount * c.usd_rate), 0) AS refunds,
             coalesce(sum(s.delivered_shipments), 0)::bigint AS shipped,
             coalesce(sum(s.breached_shipments), 0)::bigint AS breached,
             coalesce(sum(s.payments), 0)::bigint AS payments,
             coalesce(sum(s.failed_payments), 0)::bigint AS failed
        INTO o
        FROM globalcart.kpi_order_summary s
        JOIN globalcart.dim_currency c ON c.currency_code = s.currency
       WHERE (v_day_from IS NULL OR s.order_day >= v_day_from)
         AND (v_day_to IS NULL OR s.order_day < v_day_to)
         AND (v_country IS NULL OR s.country_code = v_country)
         AND (v_channel IS NULL OR s.channel = v_channel);
      SELECT coalesce(sum(s.sessions), 0)::bigint AS sessions,
             coalesce(sum(s.purchased_sessions), 0)::bigint AS purchased,
             coalesce(sum(s.carted_sessions), 0)::bigint AS carted,
             coalesce(sum(s.abandoned_sessions), 0)::bigint AS abandoned,
             coalesce(sum(s.lost_failures_usd), 0) AS lost_failures,
             coalesce(sum(s.lost_abandonment_usd), 0) AS lost_abandonment
        INTO f
        FROM globalcart.kpi_funnel_summary s
       WHERE (v_day_from IS NULL OR s.session_day >= v_day_from)
         AND (v_day_to IS NULL OR s.session_day < v_day_to)
         AND (v_channel IS NULL OR s.channel = v_channel);
    END IF;

    FOREACH v_edge IN ARRAY v_edges LOOP
      -- orders of part of a day (by order_ts, from the facts), each with its children's sums from
      -- its state (globalcart.kpi_order_state), added up by the per-order rule
      SELECT coalesce(sum(c.live_orders), 0)::bigint AS orders,
             coalesce(sum(c.gross_amount * x.usd_rate), 0) AS gross,
             coalesce(sum(c.net_amount * x.usd_rate), 0) AS net,
             coalesce(sum(c.units), 0)::bigint AS units,
             coalesce(sum(c.returned_orders), 0)::bigint AS returned,
             coalesce(sum(c.delivered_orders), 0)::bigint AS delivered,
             coalesce(sum(c.refund_amount * x.usd_rate), 0) AS refunds,
             coalesce(sum(c.delivered_shipments), 0)::bigint AS shipped,
             coalesce(sum(c.breached_shipments), 0)::bigint AS breached,
             coalesce(sum(c.payments), 0)::bigint AS payments,
             coalesce(sum(c.failed_payments), 0)::bigint AS failed
        INTO e
        FROM (SELECT s.*, cur.usd_rate
                FROM globalcart.fact_orders fo
                JOIN globalcart.kpi_order_state s ON s.order_id = fo.order_id
                JOIN globalcart.dim_currency cur ON cur.currency_code = s.currency
               WHERE fo.order_ts >= lower(v_edge) AND fo.order_ts < upper(v_edge)
                 AND (v_country IS NULL OR fo.country_code = v_country)
                 AND (v_channel IS NULL OR fo.channel = v_channel)) AS x
       CROSS JOIN LATERAL globalcart.kpi_order_contribution(x.order_status, x.deleted, x.gross_amount, x.net_amount,
                                                            x.units, x.refund_amount, x.delivered_shipments,
                                                            x.breached_shipments, x.payments, x.failed_payments) AS c;
      SELECT o.orders + e.orders AS orders, o.gross + e.gross AS gross, o.net + e.net AS net,
             o.units + e.units AS units, o.returned + e.returned AS returned, o.delivered + e.delivered AS delivered,
             o.refunds + e.refunds AS refunds, o.shipped + e.shipped AS shipped, o.breached + e.breached AS breached,
             o.payments + e.payments AS payments, o.failed + e.failed AS failed
        INTO o;

      -- sessions whose first event is in that part of a day, added up by the per-session rule
      SELECT f.sessions + coalesce(sum(c.sessions), 0) AS sessions,
             f.purchased + coalesce(sum(c.purchased_sessions), 0) AS purchased,
             f.carted + coalesce(sum(c.carted_sessions), 0) AS carted,
             f.abandoned + coalesce(sum(c.abandoned_sessions), 0) AS abandoned,
             f.lost_failures + coalesce(sum(c.lost_failures_usd), 0) AS lost_failures,
             f.lost_abandonment + coalesce(sum(c.lost_abandonment_usd), 0) AS lost_abandonment
        INTO f
        FROM globalcart.kpi_session_state k
       CROSS JOIN LATERAL globalcart.kpi_session_contribution(k.purchased, k.carted, k.payment_failed,
                                                              k.max_cart_value_usd) AS c
       WHERE k.first_event_ts >= lower(v_edge) AND k.first_event_ts < upper(v_edge)
         AND (v_channel IS NULL OR k.channel = v_channel);
    END LOOP;
  END IF;

  RETURN ROW(o.orders, o.gross, o.net, o.units, o.returned, o.delivered, o.refunds, o.shipped, o.breached, o.payments,
             o.failed, f.sessions, f.purchased, f.carted, f.abandoned, f.lost_failures,
             f.lost_abandonment)::globalcart.kpi_partial;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_sums(timestamptz, timestamptz, char, text) IS
  'The additive sums of the KPIs (globalcart.kpi_partial, money in USD) over a slice, as kpi_values reads them; whole warehouse with no arguments.';
