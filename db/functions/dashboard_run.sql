-- globalcart.dashboard_run(run_id): what one run did, for readers (the live dashboard's /runs/<id>,
-- docs/dashboard.md), as jsonb: "run" (its row of globalcart.dashboard_runs), "sources" (its counts
-- per source, from its summary), "rejects" (source, reason and the rejected row's key — its primary
-- key columns of the source registry, the partitions' time aside — never the rest of the record:
-- personal data, the auditor's)
-- and "attribution" (globalcart.explain_kpis(run_id), empty when it recorded none). NULL for a run
-- that does not exist. At most 500 rejects, the first by reject_id.
CREATE OR REPLACE FUNCTION globalcart.dashboard_run(p_run_id bigint)
  RETURNS jsonb
  LANGUAGE plpgsql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  SET jit = off
AS $$
DECLARE
  v_run jsonb;
  v_attribution jsonb := '[]'::jsonb;
BEGIN
  SELECT to_jsonb(r) INTO v_run
    FROM globalcart.dashboard_runs(1, p_run_id) AS r;
  IF v_run IS NULL THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM globalcart.kpi_run_sums s WHERE s.run_id = p_run_id) THEN
    SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.kpi_order, abs(e.contribution) DESC NULLS LAST), '[]'::jsonb)
      INTO v_attribution
      FROM globalcart.explain_kpis(p_run_id) AS e;
  END IF;
  RETURN jsonb_build_object(
    'run', v_run,
    'sources', (SELECT coalesce(jsonb_object_agg(s.source_name, r.stats -> s.source_name ORDER BY s.apply_order)
                                  FILTER (WHERE r.stats ? s.source_name), '{}'::jsonb)
                  FROM globalcart.etl_runs r CROSS JOIN globalcart.etl_sources s WHERE r.run_id = p_run_id),
    'rejects', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                         'source', j.source_name, 'reason', j.reason,
                         'key', (SELECT jsonb_object_agg(k.col, j.record -> k.col) FROM unnest(s.primary_key) AS k(col)
                                 WHERE k.col NOT LIKE '%\_ts'))
                       ORDER BY j.reject_id), '[]'::jsonb)
                  FROM (SELECT * FROM globalcart.etl_rejects j WHERE j.run_id = p_run_id ORDER BY j.reject_id LIMIT 500) AS j
                  LEFT JOIN globalcart.etl_sources s ON s.source_name = j.source_name),
    'attribution', v_attribution);
END;
$$;
COMMENT ON FUNCTION globalcart.dashboard_run(bigint) IS
  'What one run did, for readers: counts per source, rejects (reason and key, no record), its attribution; NULL when unknown.';
