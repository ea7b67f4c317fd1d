-- globalcart.kpi_values_as_of(at): the fourteen KPIs of docs/contract.md §3 over the whole
-- warehouse as it was at `at` (docs/contract.md §7) — what globalcart.snapshot_kpis() would have stored
-- then: the same sums as kpi_values() with no arguments, computed from the as-of functions
-- (fact_orders_as_of(at), …, and dim_currency_as_of(at) for the USD rates of that time) rather than
-- from the summaries the refresh keeps, so it reads every fact and its audit rows once (hash joins
-- over whole tables: like rebuild_kpi_summaries, seconds at a million orders). Before the first
-- run: counts 0, ratios NULL. Owner's rights: it returns only KPIs, which globalcart_reader may
-- read, not the versions it reads them from.
CREATE OR REPLACE FUNCTION globalcart.kpi_values_as_of(at timestamptz)
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE plpgsql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET work_mem = '256MB'
AS $$
DECLARE
  o record;
  f record;
BEGIN
  PERFORM globalcart.citus_explain_guard();  -- (auto_explain on a Citus coordinator)
  IF kpi_values_as_of.at IS NULL THEN
    RAISE EXCEPTION 'kpi_values_as_of: the time must not be NULL' USING ERRCODE = 'GC002',
      HINT = 'e.g. SELECT * FROM globalcart.kpi_values_as_of(now() - interval ''1 day'');';
  END IF;

  -- each order as of then, with its children's sums (deleted children left out), added up by the
  -- per-order rule (globalcart.kpi_order_contribution, as the summaries are)
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
    INTO o
    FROM (SELECT fo.order_status, fo.deleted_at IS NOT NULL AS deleted, fo.gross_amount, fo.net_amount, cur.usd_rate,
                 i.units, r.refund_amount, s.shipped, s.breached, p.payments, p.failed
            FROM globalcart.fact_orders_as_of(kpi_values_as_of.at) fo
            JOIN globalcart.dim_currency_as_of(kpi_values_as_of.at) cur ON cur.currency_code = fo.currency
            LEFT JOIN (SELECT fi.order_id, sum(fi.quantity) FILTER (WHERE fi.deleted_at IS NULL) AS units
                         FROM globalcart.fact_order_items_as_of(kpi_values_as_of.at) fi
                        GROUP BY fi.order_id) AS i ON i.order_id = fo.order_id
            LEFT JOIN (SELECT fr.order_id, sum(fr.refund_amount) FILTER (WHERE fr.deleted_at IS NULL) AS refund_amount
                         FROM globalcart.fact_returns_as_of(kpi_values_as_of.at) fr
                        WHERE fr.return_status = 'REFUNDED'
                        GROUP BY fr.order_id) AS r ON r.order_id = fo.order_id
            LEFT JOIN (SELECT fs.order_id, count(*) FILTER (WHERE fs.deleted_at IS NULL) AS shipped,
                              count(*) FILTER (WHERE fs.deleted_at IS NULL AND fs.sla_breached_flag) AS breached
                         FROM globalcart.fact_shipments_as_of(kpi_values_as_of.at) fs
                        WHERE fs.delivered_ts IS NOT NULL
                        GROUP BY fs.order_id) AS s ON s.order_id = fo.order_id
            LEFT JOIN (SELECT fp.order_id, count(*) FILTER (WHERE fp.deleted_at IS NULL) AS payments,
                              count(*) FILTER (WHERE fp.deleted_at IS NULL AND fp.payment_status = 'FAILED') AS failed
                         FROM globalcart.fact_payments_as_of(kpi_values_as_of.at) fp
                        GROUP BY fp.order_id) AS p ON p.order_id = fo.order_id) AS x
   CROSS JOIN LATERAL globalcart.kpi_order_contribution(x.order_status, x.deleted, x.gross_amount, x.net_amount, x.units,
                                                        x.refund_amount, x.shipped, x.breached, x.payments, x.failed) AS c;

  -- sessions: each one's flags and greatest cart value over the events of that time, added up by
  -- the per-session rule (globalcart.kpi_session_contribution)
  SELECT coalesce(sum(c.sessions), 0)::bigint AS sessions,
         coalesce(sum(c.purchased_sessions), 0)::bigint AS purchased,
         coalesce(sum(c.carted_sessions), 0)::bigint AS carted,
         coalesce(sum(c.abandoned_sessions), 0)::bigint AS abandoned,
         coalesce(sum(c.lost_failures_usd), 0) AS lost_failures,
         coalesce(sum(c.lost_abandonment_usd), 0) AS lost_abandonment
    INTO f
    FROM (SELECT bool_or(e.event_type = 'PURCHASE') AS purchased,
                 bool_or(e.event_type = 'ADD_TO_CART') AS carted,
                 bool_or(e.event_type = 'PAYMENT_FAILED') AS payment_failed,
                 max(e.cart_value_usd) AS max_cart_value_usd
            FROM globalcart.fact_funnel_events_as_of(kpi_values_as_of.at) e
           GROUP BY e.session_id) AS k
   CROSS JOIN LATERAL globalcart.kpi_session_contribution(k.purchased, k.carted, k.payment_failed,
                                                          k.max_cart_value_usd) AS c;

  RETURN QUERY
    SELECT * FROM globalcart.kpi_from_sums(o.orders, o.gross, o.net, o.units, o.returned, o.delivered, o.refunds,
                                           o.shipped, o.breached, o.payments, o.failed, f.sessions, f.purchased,
                                           f.carted, f.abandoned, f.lost_failures, f.lost_abandonment, true);
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_values_as_of(timestamptz) IS
  'The KPIs (docs/contract.md §3) of the whole warehouse as it was at the given time: what snapshot_kpis would have stored then.';
