-- GlobalCart 360: the KPIs of the latest 'before' and 'after' snapshots, side by side.
--   psql "$DATABASE_URL" -f db/reports/before_after_kpis.sql      (or \i db/reports/before_after_kpis.sql)
-- Take the snapshots with SELECT globalcart.snapshot_kpis('before'); … SELECT globalcart.snapshot_kpis('after');
\echo 'GlobalCart 360: KPIs before and after the incremental refresh'
SELECT kpi_name,
       round(before_value, 4) AS before,
       round(after_value, 4)  AS after,
       round(abs_change, 4)   AS change,
       CASE WHEN pct_change IS NULL THEN '' ELSE to_char(pct_change, 'FMS999999990.00') || ' %' END AS pct_change
FROM globalcart.compare_kpis('before', 'after');
