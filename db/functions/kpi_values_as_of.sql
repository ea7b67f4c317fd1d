-- globalcart.kpi_values_as_of(at): the fourteen KPIs of CONTRACT section 3 over the whole
-- warehouse as it was at `at` (CONTRACT 7) — what globalcart.snapshot_kpis() would have stored
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
  IF kpi_values_as_of.at IS NULL THEN
    RAISE EXCEPTION 'kpi_values_as_of: the time must not be NULL' USING ERRCODE = 'GC002',
      HINT = 'e.g. SELECT * FROM globalcart.kpi_values_as_of(now() - interval ''1 day'');';
  END IF;

  SELECT count(*) FILTER (WHERE x.live) AS orders,
         coalesce(sum(x.gross_amount * x.usd_rate) FILTER (WHERE x.live), 0) AS gross,
         coalesce(sum(x.net_amount * x.usd_rate) FILTER (WHERE x.live), 0) AS net,
         coalesce(sum(x.units) FILTER (WHERE x.live), 0)::bigint AS units,
         count(*) FILTER (WHERE x.alive AND x.order_status = 'RETURNED') AS returned,
         count(*) FILTER (WHERE x.alive AND x.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED')) AS delivered,
         coalesce(sum(x.refund_amount * x.usd_rate) FILTER (WHERE x.alive), 0) AS refunds,
         coalesce(sum(x.shipped) FILTER (WHERE x.alive), 0)::bigint AS shipped,
         coalesce(sum(x.breached) FILTER (WHERE x.alive), 0)::bigint AS breached,
         coalesce(sum(x.payments) FILTER (WHERE x.alive), 0)::bigint AS payments,
         coalesce(sum(x.failed) FILTER (WHERE x.alive), 0)::bigint AS failed
    INTO o
    -- Deleted rows count nothing: left out inside the aggregates, never by a WHERE on a fact (the
    -- planner has no statistics on deleted_at in a fresh partition and would guess 0.5 % of its rows)
    FROM (SELECT fo.order_status, fo.deleted_at IS NULL AS alive,
                 fo.deleted_at IS NULL AND fo.order_status <> 'CANCELLED' AS live, fo.gross_amount, fo.net_amount,
                 c.usd_rate, i.units, r.refund_amount, s.shipped, s.breached, p.payments, p.failed
            FROM globalcart.fact_orders_as_of(kpi_values_as_of.at) fo
            JOIN globalcart.dim_currency_as_of(kpi_values_as_of.at) c ON c.currency_code = fo.currency
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
                        GROUP BY fp.order_id) AS p ON p.order_id = fo.order_id) AS x;

  -- sessions: each one's first event (its channel), flags and greatest cart value, as in
  -- rebuild_kpi_summaries, over the events of that time
  SELECT count(*) AS sessions,
         count(*) FILTER (WHERE k.purchased) AS purchased,
         count(*) FILTER (WHERE k.carted) AS carted,
         count(*) FILTER (WHERE k.carted AND NOT k.purchased) AS abandoned,
         coalesce(sum(k.max_cart_value_usd) FILTER (WHERE k.payment_failed AND NOT k.purchased), 0) AS lost_failures,
         coalesce(sum(k.max_cart_value_usd) FILTER (WHERE k.carted AND NOT k.payment_failed AND NOT k.purchased), 0)
           AS lost_abandonment
    INTO f
    FROM (SELECT bool_or(e.event_type = 'PURCHASE') AS purchased,
                 bool_or(e.event_type = 'ADD_TO_CART') AS carted,
                 bool_or(e.event_type = 'PAYMENT_FAILED') AS payment_failed,
                 max(e.cart_value_usd) AS max_cart_value_usd
            FROM globalcart.fact_funnel_events_as_of(kpi_values_as_of.at) e
           GROUP BY e.session_id) AS k;

  RETURN QUERY
    SELECT * FROM globalcart.kpi_from_sums(o.orders, o.gross, o.net, o.units, o.returned, o.delivered, o.refunds,
                                           o.shipped, o.breached, o.payments, o.failed, f.sessions, f.purchased,
                                           f.carted, f.abandoned, f.lost_failures, f.lost_abandonment, true);
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_values_as_of(timestamptz) IS
  'The KPIs (CONTRACT 3) of the whole warehouse as it was at the given time: what snapshot_kpis would have stored then.';
