-- globalcart.snapshot_kpis(label): stores the current value of every KPI in kpi_snapshots under a
-- label, with its position (kpi_order), and returns the snapshot id. The values are kpi_values()'s:
-- the KPIs (globalcart.kpi_from_sums) of the warehouse's sums (globalcart.kpi_sums()), which are
-- kept too, in kpi_snapshot_sums, with the last run the snapshot saw — read in one statement, so
-- that the sums are those that run left or a later state (docs/contract.md §8: explain_kpis).
CREATE OR REPLACE FUNCTION globalcart.snapshot_kpis(label text)
  RETURNS bigint
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_snapshot_id bigint;
  v_sums globalcart.kpi_partial;
BEGIN
  IF snapshot_kpis.label IS NULL OR btrim(snapshot_kpis.label) = '' THEN
    RAISE EXCEPTION 'snapshot_kpis: the label must not be empty'
      USING ERRCODE = 'GC002', HINT = 'Name the snapshot, e.g. SELECT globalcart.snapshot_kpis(''before'');';
  END IF;
  v_snapshot_id := nextval('globalcart.kpi_snapshot_id_seq');
  INSERT INTO globalcart.kpi_snapshot_sums (snapshot_id, last_run_id, sums)
  SELECT v_snapshot_id, (SELECT max(r.run_id) FROM globalcart.etl_runs r), globalcart.kpi_sums()
  RETURNING (sums).* INTO v_sums;
  INSERT INTO globalcart.kpi_snapshots (snapshot_id, label, taken_at, kpi_name, kpi_value, kpi_order)
  SELECT v_snapshot_id, snapshot_kpis.label, clock_timestamp(), k.kpi_name, k.kpi_value, k.kpi_order
    FROM globalcart.kpi_values_of(v_sums) AS k;
  RETURN v_snapshot_id;
END;
$$;
COMMENT ON FUNCTION globalcart.snapshot_kpis(text) IS
  'Stores the current value of every KPI under a label in kpi_snapshots; returns the snapshot id.';
