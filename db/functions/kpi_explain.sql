-- globalcart.kpi_explain(before, after, causes, changes): the change of each KPI from the partial
-- state `before` to `after` (globalcart.kpi_partial), split into the given causes' changes plus
-- 'outside_refresh', whatever of after − before they do not explain (docs/contract.md §8). Rows of
-- (kpi, before, after, change, cause, contribution, kpi_order), one per KPI and cause whose change
-- moves it, largest first:
--   - a sum's contribution is the cause's change of it;
--   - a ratio r = N / D (globalcart.kpi_parts) from r₀ = N₀/D₀ to r₁ = N₁/D₁ gives cause k
--     (ΔN_k − r₀·ΔD_k) / D₁, which add up to r₁ − r₀; NULL when D₀ or D₁ is 0 (the KPI is NULL on
--     one side, and so is its change).
-- The contributions of a KPI add up to its change exactly: the rounding of the divisions (at the
-- 16th significant digit or so) goes to its largest contribution. Called by both explain_kpis.
CREATE OR REPLACE FUNCTION globalcart.kpi_explain(p_before globalcart.kpi_partial, p_after globalcart.kpi_partial,
                                                  p_causes text[], p_changes globalcart.kpi_partial[])
  RETURNS TABLE (kpi text, before numeric, after numeric, change numeric, cause text, contribution numeric,
                 kpi_order integer)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
  -- fourteen KPIs × ten causes: the planner's guesses for its set-returning functions would have
  -- JIT compile it (600 ms) to run it (5 ms)
  SET jit = off
AS $$
DECLARE
  v_outside globalcart.kpi_partial := globalcart.kpi_partial_add(p_after, p_before, -1);
  v_causes text[] := coalesce(p_causes, '{}');
  v_changes globalcart.kpi_partial[] := coalesce(p_changes, '{}');
BEGIN
  FOR i IN 1 .. coalesce(array_length(v_changes, 1), 0) LOOP
    v_outside := globalcart.kpi_partial_add(v_outside, v_changes[i], -1);
  END LOOP;
  v_causes := v_causes || 'outside_refresh'::text;
  v_changes := v_changes || v_outside;
  RETURN QUERY
  WITH k AS (
    SELECT v0.kpi_order, v0.kpi_name, v0.kpi_value AS before, v1.kpi_value AS after,
           p0.n AS n0, p0.d AS d0, p1.d AS d1
      FROM globalcart.kpi_values_of(p_before) AS v0
      JOIN globalcart.kpi_values_of(p_after) AS v1 ON v1.kpi_order = v0.kpi_order
      JOIN globalcart.kpi_parts(p_before) AS p0 ON p0.kpi_order = v0.kpi_order
      JOIN globalcart.kpi_parts(p_after) AS p1 ON p1.kpi_order = v0.kpi_order
  ), c AS (
    SELECT v_causes[u.ord] AS cause, u.ord, p.kpi_order, p.n, p.d
      FROM generate_subscripts(v_changes, 1) AS u(ord)  -- (unnest would spread each change into its fields)
     CROSS JOIN LATERAL globalcart.kpi_parts(v_changes[u.ord]) AS p
  ), parts AS (
    SELECT k.kpi_order, k.kpi_name, k.before, k.after, c.cause, c.ord,
           (c.n <> 0 OR coalesce(c.d, 0) <> 0) AS moved,
           CASE WHEN k.d1 IS NULL THEN c.n                     -- a sum
                WHEN k.d0 = 0 OR k.d1 = 0 THEN NULL            -- a ratio NULL before or after
                ELSE (c.n - (k.n0 / k.d0) * c.d) / k.d1 END AS part
      FROM k JOIN c ON c.kpi_order = k.kpi_order
  ), fixed AS (
    SELECT p.*,
           row_number() OVER (PARTITION BY p.kpi_order ORDER BY p.moved DESC, abs(p.part) DESC NULLS LAST, p.ord) = 1
             AS largest,
           (p.after - p.before) - sum(p.part) OVER (PARTITION BY p.kpi_order) AS residual
      FROM parts p
  ), final AS (
    SELECT f.*, f.part + CASE WHEN f.largest THEN coalesce(f.residual, 0) ELSE 0 END AS contribution
      FROM fixed f
  )
  SELECT f.kpi_name, f.before, f.after, f.after - f.before, f.cause, f.contribution, f.kpi_order
    FROM final f
   WHERE f.moved AND f.contribution IS DISTINCT FROM 0
   ORDER BY f.kpi_order, abs(f.contribution) DESC NULLS LAST, f.ord;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_explain(globalcart.kpi_partial, globalcart.kpi_partial, text[],
                                           globalcart.kpi_partial[]) IS
  'Each KPI''s change from one partial state to another split into causes, outside_refresh the rest (docs/contract.md §8); used by explain_kpis.';
