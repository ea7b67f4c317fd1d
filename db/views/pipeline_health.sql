-- globalcart.pipeline_health (docs/contract.md §5.4): "is the pipeline healthy, and how far behind is
-- it?", one row per source, for people, `globalcart health` and monitoring probes:
--   staged_rows       rows staged and not yet examined (the backlog)
--   deferred_rows     rows waiting for their order (order-grain children)
--   oldest_staged_at  first-staged time of the oldest row not deferred
--   watermark_ts      greatest updated_at applied (etl_watermarks)
--   last_ok_run_at, last_failed_run_at   when the latest ok / failed run finished
--   last_error        the error of the latest failed run ("SQLSTATE: message")
--   rejected_24h      rows of the source quarantined in the last 24 hours
--   fed_by            the CDC subscription that stages the source's changes (globalcart cdc
--                     attach), NULL when none does
--   feed_problem      why that feed is failing (globalcart.cdc_feed()), NULL when it is not
--   status            'failing' when the latest run that did work failed or the source's CDC
--                     feed is failing; else 'lagging'
--                     when a row (deferred ones aside) has been staged longer than
--                     etl_settings 'freshness_alert' (default 5 minutes); else 'ok'.
-- Reading it scans staging (counts) and probes etl_runs and etl_rejects by index; the rows come
-- from globalcart.pipeline_health_rows(), which reads them with the owner's rights.
CREATE OR REPLACE VIEW globalcart.pipeline_health AS
SELECT h.source_name, h.staged_rows, h.deferred_rows, h.oldest_staged_at, h.watermark_ts, h.last_ok_run_at,
       h.last_failed_run_at, h.last_error, h.rejected_24h, h.status, h.fed_by, h.feed_problem
  FROM globalcart.pipeline_health_rows() AS h;
COMMENT ON VIEW globalcart.pipeline_health IS
  'One row per source: staged and deferred rows, oldest staged time, watermark, last ok/failed run, last error, rejects in 24 h, and status ok / lagging / failing.';
