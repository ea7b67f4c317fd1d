-- globalcart.latest_snapshot(label, caller, errcode): the latest snapshot of a label
-- (globalcart.kpi_snapshots), as compare_kpis, explain_kpis and explain_kpis_since look it up.
-- A label with none raises errcode ('<caller>: no snapshot labelled …'), with a hint naming the
-- labels that have one, or how to take the first.
CREATE OR REPLACE FUNCTION globalcart.latest_snapshot(p_label text, p_caller text, p_errcode text)
  RETURNS bigint
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_labels text;
BEGIN
  SELECT max(s.snapshot_id) INTO v_id FROM globalcart.kpi_snapshots s WHERE s.label = p_label;
  IF v_id IS NULL THEN
    SELECT string_agg(DISTINCT quote_literal(s.label), ', ') INTO v_labels FROM globalcart.kpi_snapshots s;
    RAISE EXCEPTION '%: no snapshot labelled %', p_caller, coalesce(quote_literal(p_label), 'NULL')
      USING ERRCODE = p_errcode,
            HINT = CASE WHEN v_labels IS NULL THEN 'No snapshot exists yet: SELECT globalcart.snapshot_kpis(''before'');'
                        ELSE 'Labels with snapshots: ' || v_labels END;
  END IF;
  RETURN v_id;
END;
$$;
COMMENT ON FUNCTION globalcart.latest_snapshot(text, text, text) IS
  'The latest snapshot of a label; raises the caller''s SQLSTATE naming the labels that have one when it has none.';
