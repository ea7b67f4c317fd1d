-- globalcart.pipeline_health (CONTRACT 5.4): "is the pipeline healthy, and how far behind is
-- it?", one row per source, for people, `globalcart health` and monitoring probes:
--   staged_rows       rows staged and not yet examined (the backlog)
--   deferred_rows     rows waiting for their order (order-grain children)
--   oldest_staged_at  first-staged time of the oldest row not deferred
--   watermark_ts      greatest updated_at applied (etl_watermarks)
--   last_ok_run_at, last_failed_run_at   when the latest ok / failed run finished
--   last_error        the error of the latest failed run ("SQLSTATE: message")
--   rejected_24h      rows of the source quarantined in the last 24 hours
--   status            'failing' when the latest run that did work failed; else 'lagging'
--                     when a row (deferred ones aside) has been staged longer than
--                     etl_settings 'freshness_alert' (default 5 minutes); else 'ok'.
-- Reading it scans staging (counts) and probes etl_runs and etl_rejects by index.
CREATE OR REPLACE VIEW globalcart.pipeline_health AS
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
       CASE WHEN l.status = 'failed' THEN 'failing'
            WHEN s.oldest_staged_at < now() - l.freshness_alert THEN 'lagging'
            ELSE 'ok' END AS status
  FROM globalcart.staged_rows() WITH ORDINALITY AS s
  CROSS JOIN latest l
  LEFT JOIN globalcart.etl_watermarks w ON w.source_name = s.source_name
 ORDER BY s.ordinality;
COMMENT ON VIEW globalcart.pipeline_health IS
  'One row per source: staged and deferred rows, oldest staged time, watermark, last ok/failed run, last error, rejects in 24 h, and status ok / lagging / failing.';
