-- 0012: why the KPIs moved (docs/contract.md §8, docs/attribution.md). Every refresh and revert
-- records, in its own transaction, how much of its change to the KPI summaries' partial state
-- came from each cause; a snapshot records the partial state it was taken from and the last run
-- it saw. globalcart.explain_kpis() splits a KPI's change between two snapshots, or over one run,
-- into those causes — exactly, what no run explains being 'outside_refresh'.

-- The partial state of the KPIs over the whole warehouse: the additive sums the fourteen KPIs are
-- made of (the arguments of globalcart.kpi_from_sums, money in USD). A change to it is one too.
CREATE TYPE globalcart.kpi_partial AS (
  orders               bigint,   -- live orders
  gross_usd            numeric,
  net_usd              numeric,
  units                bigint,
  returned_orders      bigint,
  delivered_orders     bigint,   -- DELIVERED, COMPLETED or RETURNED
  refunds_usd          numeric,
  delivered_shipments  bigint,
  breached_shipments   bigint,
  payments             bigint,
  failed_payments      bigint,
  sessions             bigint,
  purchased_sessions   bigint,
  carted_sessions      bigint,
  abandoned_sessions   bigint,
  lost_failures_usd    numeric,
  lost_abandonment_usd numeric
);
COMMENT ON TYPE globalcart.kpi_partial IS
  'The additive sums the KPIs are made of (docs/contract.md §3), over the whole warehouse, money in USD; or a change to them.';

-- One row per run and cause that changed the partial state: the cause's change over every run up
-- to this one (a running total, so that a window of any number of runs is two lookups a cause).
CREATE TABLE globalcart.kpi_attribution (
  cause   text NOT NULL CHECK (cause IN ('new_orders', 'order_updates', 'deletes', 'items', 'payments', 'shipments',
                                         'returns', 'funnel', 'reverts')),
  run_id  bigint NOT NULL,
  total   globalcart.kpi_partial NOT NULL,
  PRIMARY KEY (cause, run_id)
);
COMMENT ON TABLE globalcart.kpi_attribution IS
  'Per run and cause (docs/contract.md §8): the cause''s change to the KPIs'' partial state over all runs up to this '
  'one (a running total; money in USD at the rates of each run). Written by the refresh and revert_run.';

-- The partial state a run left (money at the rates of its time): with its causes, what the run
-- changed from and to.
CREATE TABLE globalcart.kpi_run_sums (
  run_id  bigint PRIMARY KEY,
  after   globalcart.kpi_partial NOT NULL
);
COMMENT ON TABLE globalcart.kpi_run_sums IS
  'The KPIs'' partial state right after each run that recorded its attribution (docs/contract.md §8).';

-- The partial state each snapshot was taken from, and the last run it saw (runs take their id
-- under the refresh's lock, which they hold until they commit: a run with a greater id committed
-- after the snapshot).
CREATE TABLE globalcart.kpi_snapshot_sums (
  snapshot_id  bigint PRIMARY KEY,
  last_run_id  bigint,
  sums         globalcart.kpi_partial NOT NULL
);
COMMENT ON TABLE globalcart.kpi_snapshot_sums IS
  'The partial state behind each snapshot of snapshot_kpis, and the last run it saw (docs/contract.md §8). '
  'A snapshot taken before migration 0012 has none: its whole change is outside_refresh.';

INSERT INTO globalcart.etl_settings (name, value, description) VALUES
  ('kpi_attribution', 'on',
   'Whether each refresh records why the KPIs moved (docs/contract.md §8): on or off. Off, a run''s change is outside_refresh to explain_kpis.');
