-- KPIs (CONTRACT section 3). Money is USD: amount * dim_currency.usd_rate (a return is in
-- its order's currency). "Live" orders are those not CANCELLED; a session is a distinct
-- session_id; a ratio with a zero denominator is NULL. Values are stored unrounded.
--
--   globalcart.kpi_values()              the current value of every KPI, in contract order
--   globalcart.snapshot_kpis(label)      stores them in kpi_snapshots, returns the snapshot id
--   globalcart.compare_kpis(before, after)  latest snapshot of each label, side by side

CREATE OR REPLACE FUNCTION globalcart.kpi_values()
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog
AS $$
DECLARE
  v_orders bigint; v_gmv numeric; v_net numeric; v_units bigint; v_returned bigint; v_delivered bigint;
  v_refunds numeric; v_shipped bigint; v_breached bigint; v_payments bigint; v_failed bigint;
  v_sla numeric;
BEGIN
  SELECT count(*), coalesce(sum(o.gross_amount * c.usd_rate), 0), coalesce(sum(o.net_amount * c.usd_rate), 0)
    INTO v_orders, v_gmv, v_net
    FROM globalcart.fact_orders o
    JOIN globalcart.dim_currency c ON c.currency_code = o.currency
   WHERE o.order_status <> 'CANCELLED';

  SELECT count(*) FILTER (WHERE o.order_status = 'RETURNED'),
         count(*) FILTER (WHERE o.order_status IN ('DELIVERED', 'COMPLETED', 'RETURNED'))
    INTO v_returned, v_delivered
    FROM globalcart.fact_orders o;

  SELECT coalesce(sum(i.quantity), 0) INTO v_units
    FROM globalcart.fact_order_items i
    JOIN globalcart.fact_orders o ON o.order_id = i.order_id
   WHERE o.order_status <> 'CANCELLED';

  SELECT coalesce(sum(r.refund_amount * c.usd_rate), 0) INTO v_refunds
    FROM globalcart.fact_returns r
    JOIN globalcart.fact_orders o ON o.order_id = r.order_id
    JOIN globalcart.dim_currency c ON c.currency_code = o.currency
   WHERE r.return_status = 'REFUNDED';

  SELECT count(*), count(*) FILTER (WHERE s.sla_breached_flag) INTO v_shipped, v_breached
    FROM globalcart.fact_shipments s WHERE s.delivered_ts IS NOT NULL;
  v_sla := v_breached::numeric / nullif(v_shipped, 0);

  SELECT count(*), count(*) FILTER (WHERE p.payment_status = 'FAILED') INTO v_payments, v_failed
    FROM globalcart.fact_payments p;

  RETURN QUERY VALUES
    (1, 'orders', v_orders::numeric),
    (2, 'gmv_usd', v_gmv),
    (3, 'net_revenue_usd', v_net - v_refunds),
    (4, 'aov_usd', v_net / nullif(v_orders, 0)),
    (5, 'units', v_units::numeric),
    (6, 'return_rate', v_returned::numeric / nullif(v_delivered, 0)),
    (7, 'refunds_usd', v_refunds),
    (8, 'sla_breach_rate', v_sla),
    (9, 'on_time_delivery_rate', 1 - v_sla),
    (10, 'payment_failure_rate', v_failed::numeric / nullif(v_payments, 0));

  IF to_regclass('globalcart.fact_funnel_events') IS NOT NULL THEN
    RETURN QUERY
      WITH sessions AS (
        SELECT bool_or(f.event_type = 'PURCHASE') AS purchased,
               bool_or(f.event_type = 'ADD_TO_CART') AS carted,
               bool_or(f.event_type = 'PAYMENT_FAILED') AS failed,
               max(f.cart_value_usd) AS cart_value
          FROM globalcart.fact_funnel_events f
         GROUP BY f.session_id
      ), totals AS (
        SELECT count(*) AS all_sessions,
               count(*) FILTER (WHERE s.purchased) AS purchased,
               count(*) FILTER (WHERE s.carted) AS carted,
               count(*) FILTER (WHERE s.carted AND NOT s.purchased) AS abandoned,
               coalesce(sum(s.cart_value) FILTER (WHERE s.failed AND NOT s.purchased), 0) AS lost_failures,
               coalesce(sum(s.cart_value) FILTER (WHERE s.carted AND NOT s.failed AND NOT s.purchased), 0)
                 AS lost_abandonment
          FROM sessions s
      )
      SELECT v.kpi_order, v.kpi_name, v.kpi_value
        FROM totals t
       CROSS JOIN LATERAL (VALUES
         (11, 'conversion_rate', t.purchased::numeric / nullif(t.all_sessions, 0)),
         (12, 'cart_abandonment_rate', t.abandoned::numeric / nullif(t.carted, 0)),
         (13, 'revenue_lost_due_to_failures', t.lost_failures),
         (14, 'revenue_lost_due_to_abandonment', t.lost_abandonment)) AS v(kpi_order, kpi_name, kpi_value);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_values() IS
  'Current value of every KPI of CONTRACT section 3 (USD, ratios NULL on an empty denominator), in contract order.';

CREATE OR REPLACE FUNCTION globalcart.snapshot_kpis(label text)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog
AS $$
DECLARE
  v_snapshot_id bigint;
BEGIN
  IF snapshot_kpis.label IS NULL OR btrim(snapshot_kpis.label) = '' THEN
    RAISE EXCEPTION 'snapshot_kpis: the label must not be empty'
      USING ERRCODE = 'GC002', HINT = 'Name the snapshot, e.g. SELECT globalcart.snapshot_kpis(''before'');';
  END IF;
  v_snapshot_id := nextval('globalcart.kpi_snapshot_id_seq');
  INSERT INTO globalcart.kpi_snapshots (snapshot_id, label, taken_at, kpi_name, kpi_value)
  SELECT v_snapshot_id, snapshot_kpis.label, clock_timestamp(), k.kpi_name, k.kpi_value
    FROM globalcart.kpi_values() AS k;
  RETURN v_snapshot_id;
END;
$$;
COMMENT ON FUNCTION globalcart.snapshot_kpis(text) IS
  'Stores the current value of every KPI under a label in kpi_snapshots; returns the snapshot id.';

CREATE OR REPLACE FUNCTION globalcart.compare_kpis(before_label text DEFAULT 'before', after_label text DEFAULT 'after')
  RETURNS TABLE (kpi_name text, before_value numeric, after_value numeric, abs_change numeric, pct_change numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog
AS $$
DECLARE
  v_before bigint;
  v_after bigint;
  v_labels text;
BEGIN
  SELECT max(s.snapshot_id) INTO v_before FROM globalcart.kpi_snapshots s WHERE s.label = compare_kpis.before_label;
  SELECT max(s.snapshot_id) INTO v_after FROM globalcart.kpi_snapshots s WHERE s.label = compare_kpis.after_label;
  IF v_before IS NULL OR v_after IS NULL THEN
    SELECT string_agg(DISTINCT quote_literal(s.label), ', ') INTO v_labels FROM globalcart.kpi_snapshots s;
    RAISE EXCEPTION 'compare_kpis: no snapshot labelled %',
                    quote_literal(CASE WHEN v_before IS NULL THEN compare_kpis.before_label ELSE compare_kpis.after_label END)
      USING ERRCODE = 'GC003',
            HINT = CASE WHEN v_labels IS NULL THEN 'No snapshot exists yet: SELECT globalcart.snapshot_kpis(''before'');'
                        ELSE 'Labels with snapshots: ' || v_labels END;
  END IF;
  RETURN QUERY
    SELECT coalesce(a.kpi_name, b.kpi_name),
           b.kpi_value, a.kpi_value,
           a.kpi_value - b.kpi_value,
           (a.kpi_value - b.kpi_value) / nullif(abs(b.kpi_value), 0) * 100
      FROM (SELECT s.kpi_name, s.kpi_value FROM globalcart.kpi_snapshots s WHERE s.snapshot_id = v_before) AS b
      FULL JOIN (SELECT s.kpi_name, s.kpi_value FROM globalcart.kpi_snapshots s WHERE s.snapshot_id = v_after) AS a
        ON a.kpi_name = b.kpi_name
     ORDER BY coalesce(array_position(ARRAY['orders', 'gmv_usd', 'net_revenue_usd', 'aov_usd', 'units', 'return_rate',
                                            'refunds_usd', 'sla_breach_rate', 'on_time_delivery_rate',
                                            'payment_failure_rate', 'conversion_rate', 'cart_abandonment_rate',
                                            'revenue_lost_due_to_failures', 'revenue_lost_due_to_abandonment'],
                                      coalesce(a.kpi_name, b.kpi_name)), 99),
              1;
END;
$$;
COMMENT ON FUNCTION globalcart.compare_kpis(text, text) IS
  'KPIs of the latest snapshot of two labels side by side: before, after, absolute change, and percent change (100 * change / |before|, NULL when before is 0 or NULL).';
