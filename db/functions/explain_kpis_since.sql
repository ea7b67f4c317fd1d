-- globalcart.explain_kpis_since(from_label): why the KPIs moved from the latest snapshot of a label
-- to now — like globalcart.explain_kpis(from_label, to_label) with the warehouse as it is now
-- (globalcart.kpi_sums()) for the second snapshot and every run recorded so far. Read in one
-- snapshot of the database (a STABLE function), so the runs and the sums agree. What the live
-- dashboard's tiles show (docs/dashboard.md). An unknown label raises GC013; a snapshot from before
-- migration 0012: the whole change is outside_refresh.
CREATE OR REPLACE FUNCTION globalcart.explain_kpis_since(from_label text)
  RETURNS TABLE (kpi text, before numeric, after numeric, change numeric, cause text, contribution numeric,
                 kpi_order integer)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  SET jit = off  -- (see globalcart.kpi_explain)
AS $$
DECLARE
  v_from bigint := globalcart.latest_snapshot(explain_kpis_since.from_label, 'explain_kpis_since', 'GC013');
  v_lo globalcart.kpi_snapshot_sums;
  v_now globalcart.kpi_partial := globalcart.kpi_sums();
  v_causes text[];
  v_changes globalcart.kpi_partial[];
BEGIN
  SELECT * INTO v_lo FROM globalcart.kpi_snapshot_sums s WHERE s.snapshot_id = v_from;
  IF v_lo.snapshot_id IS NULL THEN  -- a snapshot from before the attribution: the change, outside_refresh
    RETURN QUERY
      SELECT b.kpi_name, b.kpi_value, a.kpi_value, a.kpi_value - b.kpi_value, 'outside_refresh'::text,
             a.kpi_value - b.kpi_value, a.kpi_order
        FROM globalcart.kpi_snapshots b
        JOIN globalcart.kpi_values_of(v_now) a ON a.kpi_name = b.kpi_name
       WHERE b.snapshot_id = v_from AND a.kpi_value IS DISTINCT FROM b.kpi_value
       ORDER BY a.kpi_order;
    RETURN;
  END IF;
  SELECT w.causes, w.changes INTO v_causes, v_changes
    FROM globalcart.kpi_attribution_window(coalesce(v_lo.last_run_id, 0), NULL) AS w;
  RETURN QUERY SELECT * FROM globalcart.kpi_explain(v_lo.sums, v_now, v_causes, v_changes);
END;
$$;
COMMENT ON FUNCTION globalcart.explain_kpis_since(text) IS
  'Why the KPIs moved from the latest snapshot of a label to now, split by cause (docs/contract.md §8).';
