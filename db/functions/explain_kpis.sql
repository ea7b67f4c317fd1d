-- globalcart.explain_kpis(from_label, to_label) and globalcart.explain_kpis(run_id): why the KPIs
-- moved (docs/contract.md §8, docs/attribution.md) — rows of (kpi, before, after, change, cause,
-- contribution, kpi_order), one per KPI and cause with a non-zero contribution, the contributions of
-- each KPI adding up to its change exactly (globalcart.kpi_explain).
--
-- Between two snapshots (the latest of each label): the causes' changes are those the runs after
-- the first snapshot and up to the second recorded (globalcart.kpi_attribution: two lookups a cause,
-- whatever the number of runs), outside_refresh the rest of the change of the partial state
-- (globalcart.kpi_snapshot_sums) — currency rates changed since, facts changed outside the refresh,
-- a rebuild, fact retention, runs with 'kpi_attribution' off. From a later snapshot to an earlier
-- one: the negative of the other direction. A snapshot without sums (taken before migration 0012):
-- its whole change is outside_refresh. An unknown label raises GC013.
CREATE OR REPLACE FUNCTION globalcart.explain_kpis(from_label text, to_label text)
  RETURNS TABLE (kpi text, before numeric, after numeric, change numeric, cause text, contribution numeric,
                 kpi_order integer)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  SET jit = off  -- (see globalcart.kpi_explain)
AS $$
DECLARE
  v_from bigint := globalcart.latest_snapshot(explain_kpis.from_label, 'explain_kpis', 'GC013');
  v_to bigint := globalcart.latest_snapshot(explain_kpis.to_label, 'explain_kpis', 'GC013');
  v_lo globalcart.kpi_snapshot_sums;  -- the earlier snapshot's sums
  v_hi globalcart.kpi_snapshot_sums;  -- the later one's
  v_sign integer;
  v_causes text[];
  v_changes globalcart.kpi_partial[];
BEGIN
  v_sign := CASE WHEN v_from <= v_to THEN 1 ELSE -1 END;
  SELECT * INTO v_lo FROM globalcart.kpi_snapshot_sums s WHERE s.snapshot_id = least(v_from, v_to);
  SELECT * INTO v_hi FROM globalcart.kpi_snapshot_sums s WHERE s.snapshot_id = greatest(v_from, v_to);

  IF v_lo.snapshot_id IS NULL OR v_hi.snapshot_id IS NULL THEN
    -- a snapshot from before the attribution: its values only, the whole change outside_refresh
    RETURN QUERY
      SELECT b.kpi_name, b.kpi_value, a.kpi_value, a.kpi_value - b.kpi_value, 'outside_refresh'::text,
             a.kpi_value - b.kpi_value, coalesce(a.kpi_order, b.kpi_order)
        FROM globalcart.kpi_snapshots b
        JOIN globalcart.kpi_snapshots a ON a.snapshot_id = v_to AND a.kpi_name = b.kpi_name
       WHERE b.snapshot_id = v_from AND a.kpi_value IS DISTINCT FROM b.kpi_value
       ORDER BY coalesce(a.kpi_order, b.kpi_order), b.kpi_name;
    RETURN;
  END IF;

  -- each cause's change over the runs (lo.last_run_id, hi.last_run_id] (a snapshot taken before any
  -- run saw none: 0, run ids start at 1)
  SELECT w.causes, w.changes INTO v_causes, v_changes
    FROM globalcart.kpi_attribution_window(coalesce(v_lo.last_run_id, 0), coalesce(v_hi.last_run_id, 0)) AS w;

  RETURN QUERY
    SELECT e.kpi,
           CASE WHEN v_sign = 1 THEN e.before ELSE e.after END,
           CASE WHEN v_sign = 1 THEN e.after ELSE e.before END,
           v_sign * e.change, e.cause, v_sign * e.contribution, e.kpi_order
      FROM globalcart.kpi_explain(v_lo.sums, v_hi.sums, v_causes, v_changes) AS e;
END;
$$;
COMMENT ON FUNCTION globalcart.explain_kpis(text, text) IS
  'Why the KPIs moved between the latest snapshots of two labels: each KPI''s change split by cause, adding up exactly (docs/contract.md §8).';

-- For one run: its causes' changes (globalcart.kpi_attribution_window of it alone), from the
-- partial state it found to the one it left (globalcart.kpi_run_sums). A run
-- with no attribution (unknown, failed or skipped, run with 'kpi_attribution' off, or from before
-- migration 0012) raises GC013.
CREATE OR REPLACE FUNCTION globalcart.explain_kpis(run_id bigint)
  RETURNS TABLE (kpi text, before numeric, after numeric, change numeric, cause text, contribution numeric,
                 kpi_order integer)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  SET jit = off  -- (see globalcart.kpi_explain)
AS $$
DECLARE
  v_after globalcart.kpi_partial;
  v_before globalcart.kpi_partial;
  v_causes text[];
  v_changes globalcart.kpi_partial[];
BEGIN
  SELECT (s.after).* INTO v_after FROM globalcart.kpi_run_sums s WHERE s.run_id = explain_kpis.run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'explain_kpis: no attribution recorded for run %', coalesce(explain_kpis.run_id::text, 'NULL')
      USING ERRCODE = 'GC013',
            HINT = 'A run that failed or was skipped changed nothing; a run with kpi_attribution off, or from before '
                   'migration 0012, recorded none (globalcart.etl_runs lists the runs).';
  END IF;
  SELECT w.causes, w.changes INTO v_causes, v_changes  -- (the runs after run_id - 1 up to run_id: it alone)
    FROM globalcart.kpi_attribution_window(explain_kpis.run_id - 1, explain_kpis.run_id) AS w;
  v_before := v_after;
  FOR i IN 1 .. coalesce(array_length(v_changes, 1), 0) LOOP
    v_before := globalcart.kpi_partial_add(v_before, v_changes[i], -1);
  END LOOP;
  RETURN QUERY SELECT * FROM globalcart.kpi_explain(v_before, v_after, v_causes, v_changes);
END;
$$;
COMMENT ON FUNCTION globalcart.explain_kpis(bigint) IS
  'Why the KPIs moved in one run: each KPI''s change split by cause, adding up exactly (docs/contract.md §8).';
