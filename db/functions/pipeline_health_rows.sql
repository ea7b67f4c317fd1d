-- globalcart.pipeline_health_rows(): the rows of the view globalcart.pipeline_health (see
-- db/views/pipeline_health.sql), computed with the owner's rights (SECURITY DEFINER): health needs
-- staging counts, runs, rejects and a setting, none of which refreshers and readers may read
-- themselves. EXECUTE is granted to them with SELECT on the view.
CREATE OR REPLACE FUNCTION globalcart.pipeline_health_rows()
  RETURNS TABLE (source_name text, staged_rows bigint, deferred_rows bigint, oldest_staged_at timestamptz,
                 watermark_ts timestamptz, last_ok_run_at timestamptz, last_failed_run_at timestamptz,
                 last_error text, rejected_24h bigint, status text, fed_by text, feed_problem text)
  LANGUAGE sql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  WITH latest AS (
    SELECT (SELECT r.status FROM globalcart.etl_runs r ORDER BY r.run_id DESC LIMIT 1) AS status,
           (SELECT r.finished_at FROM globalcart.etl_runs r WHERE r.status = 'ok'
             ORDER BY r.run_id DESC LIMIT 1) AS last_ok_run_at,
           f.finished_at AS last_failed_run_at,
           (f.error ->> 'sqlstate') || ': ' || (f.error ->> 'message') AS last_error,
           globalcart.etl_setting_interval('freshness_alert', interval '5 minutes') AS freshness_alert
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (SELECT r.finished_at, r.error FROM globalcart.etl_runs r WHERE r.status = 'failed'
                          ORDER BY r.run_id DESC LIMIT 1) AS f ON true
  )
  SELECT s.source_name,
         s.staged AS staged_rows,
         s.deferred AS deferred_rows,
         s.oldest_staged_at,
         w.watermark_ts,
         l.last_ok_run_at,
         l.last_failed_run_at,
         l.last_error,
         (SELECT count(*) FROM globalcart.etl_rejects j
           WHERE j.source_name = s.source_name AND j.rejected_at > now() - interval '24 hours') AS rejected_24h,
         CASE WHEN l.status = 'failed' OR c.problem IS NOT NULL THEN 'failing'
              WHEN s.oldest_staged_at < now() - l.freshness_alert THEN 'lagging'
              ELSE 'ok' END AS status,
         c.subscription AS fed_by,
         c.problem AS feed_problem
    FROM globalcart.staged_rows() WITH ORDINALITY AS s
    CROSS JOIN latest l
    -- a source the CDC feed stages into (it has a bronze table) fails with the feed
    LEFT JOIN globalcart.cdc_feed() AS c
           ON EXISTS (SELECT 1 FROM globalcart.etl_cdc_tables b WHERE b.source_name = s.source_name)
    LEFT JOIN globalcart.etl_watermarks w ON w.source_name = s.source_name
   ORDER BY s.ordinality
$$;
COMMENT ON FUNCTION globalcart.pipeline_health_rows() IS
  'The rows of globalcart.pipeline_health, computed with the owner''s rights.';
