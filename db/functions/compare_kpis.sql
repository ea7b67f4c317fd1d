-- globalcart.compare_kpis(before_label, after_label): the latest snapshot of each label side by
-- side: before, after, absolute change, percent change (100 * change / |before|, NULL when
-- before is 0 or NULL), in the KPIs' order. GC003 names the labels that exist when one has none.
CREATE OR REPLACE FUNCTION globalcart.compare_kpis(before_label text DEFAULT 'before', after_label text DEFAULT 'after')
  RETURNS TABLE (kpi_name text, before_value numeric, after_value numeric, abs_change numeric, pct_change numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_before bigint := globalcart.latest_snapshot(compare_kpis.before_label, 'compare_kpis', 'GC003');
  v_after bigint := globalcart.latest_snapshot(compare_kpis.after_label, 'compare_kpis', 'GC003');
BEGIN
  RETURN QUERY
    SELECT coalesce(a.kpi_name, b.kpi_name),
           b.kpi_value, a.kpi_value,
           a.kpi_value - b.kpi_value,
           (a.kpi_value - b.kpi_value) / nullif(abs(b.kpi_value), 0) * 100
      FROM (SELECT s.kpi_name, s.kpi_value, s.kpi_order FROM globalcart.kpi_snapshots s
             WHERE s.snapshot_id = v_before) AS b
      FULL JOIN (SELECT s.kpi_name, s.kpi_value, s.kpi_order FROM globalcart.kpi_snapshots s
                  WHERE s.snapshot_id = v_after) AS a
        ON a.kpi_name = b.kpi_name
     ORDER BY coalesce(a.kpi_order, b.kpi_order, 99), 1;
END;
$$;
COMMENT ON FUNCTION globalcart.compare_kpis(text, text) IS
  'KPIs of the latest snapshot of two labels side by side: before, after, absolute change, and percent change (100 * change / |before|, NULL when before is 0 or NULL).';
