-- 0002_running_unattended: what the pipeline needs to run with nobody watching
-- (docs/contract.md §2.7, §2.11 and §5): failed runs recorded with their error, rows waiting
-- for their order told apart from fresh ones, the settings of section 5 with their
-- defaults, and the indexes that health and retention read by.

-- A run that fails is recorded (status 'failed', with the error) instead of vanishing.
ALTER TABLE globalcart.etl_runs DROP CONSTRAINT etl_runs_status_check;
ALTER TABLE globalcart.etl_runs
  ADD COLUMN error jsonb,
  ADD CONSTRAINT etl_runs_status_check CHECK (status IN ('running', 'ok', 'failed')),
  ADD CONSTRAINT etl_runs_error_iff_failed CHECK ((status = 'failed') = (error IS NOT NULL));
COMMENT ON COLUMN globalcart.etl_runs.error IS
  'For a failed run: {"sqlstate", "message"[, "detail", "hint"]} of the error that rolled it back.';
COMMENT ON TABLE globalcart.etl_runs IS
  'One row per refresh call that did work (none for calls that found nothing staged, none for skipped calls); '
  'status ok or failed; stats is the jsonb the call returned.';
CREATE INDEX etl_runs_failed_idx ON globalcart.etl_runs (run_id) WHERE status = 'failed';
CREATE INDEX etl_runs_started_idx ON globalcart.etl_runs (started_at);

-- Rows of the four order-grain children that a refresh put back to wait for their order.
-- 0 for a row as its producer staged it; producers never name the column.
ALTER TABLE globalcart.stg_order_items ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
ALTER TABLE globalcart.stg_payments ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
ALTER TABLE globalcart.stg_shipments ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
ALTER TABLE globalcart.stg_returns ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN globalcart.stg_order_items.deferrals IS
  'How many refreshes have put this row back to wait for its order (0: not examined yet). Bookkeeping: never named by producers.';
COMMENT ON COLUMN globalcart.stg_payments.deferrals IS
  'How many refreshes have put this row back to wait for its order (0: not examined yet). Bookkeeping: never named by producers.';
COMMENT ON COLUMN globalcart.stg_shipments.deferrals IS
  'How many refreshes have put this row back to wait for its order (0: not examined yet). Bookkeeping: never named by producers.';
COMMENT ON COLUMN globalcart.stg_returns.deferrals IS
  'How many refreshes have put this row back to wait for its order (0: not examined yet). Bookkeeping: never named by producers.';

-- Health counts the rejects of the last 24 hours per source; retention deletes by age.
CREATE INDEX etl_rejects_source_time_idx ON globalcart.etl_rejects (source_name, rejected_at);
CREATE INDEX etl_rejects_time_idx ON globalcart.etl_rejects (rejected_at);
CREATE INDEX kpi_snapshots_taken_idx ON globalcart.kpi_snapshots (taken_at);

-- The settings of docs/contract.md §5, each with its default (a missing row means the default).
INSERT INTO globalcart.etl_settings (name, value, description) VALUES
  ('lock_timeout', '10 seconds',
   'Longest a refresh waits for any lock (a BI session''s row lock, a DDL lock) before it fails and is recorded as failed. An interval; 0 waits without limit.'),
  ('max_run_time', '15 minutes',
   'Longest run of a scheduled job: the statement_timeout of the plain job''s command, and the bound of a follow loop. An interval.'),
  ('max_rows_per_run', '500000',
   'Most staged rows of each source one refresh claims, earliest staged first; the rest waits for the next call (backlog). A positive integer.'),
  ('max_clock_skew', '5 minutes',
   'How far a staged updated_at may lie ahead of the warehouse clock; later ones are rejected as future_timestamp. An interval.'),
  ('freshness_alert', '5 minutes',
   'pipeline_health reports a source as lagging when a row (deferred ones aside) has been staged longer than this. An interval.'),
  ('history_retention', '90 days',
   'purge_history() deletes etl_runs, etl_rejects and kpi_snapshots rows older than this. An interval.'),
  ('audit_retention', 'none',
   'purge_history() deletes audit rows older than this; ''none'' keeps them for ever. An interval or none.')
ON CONFLICT (name) DO NOTHING;
