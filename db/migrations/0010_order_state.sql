-- 0010: the per-order state — one row per order, unpartitioned, kept by the refresh (README
-- "Benchmark", "What a refresh does"). It is two things at once:
--   - the order directory: order_id -> the order_ts under which the order is stored now, that is
--     its monthly partition. A batch's keys arrive without their month; through the directory every
--     lookup of an order, and of its items, payments, shipments and returns (which carry its
--     order_ts), reads one partition instead of one per month kept;
--   - the order's share of the KPI summaries: the inputs of globalcart.kpi_order_contribution()
--     (status, deleted, amounts, and what its items, payments, shipments and returns add up to), so
--     that the refresh takes an order's old contribution out of kpi_order_summary from here — read
--     once, never the facts before and after — and re-reads an order's children only for the kinds
--     of child its batch changed.
-- Like kpi_session_state for sessions. The refresh writes the directory part as it applies the
-- orders (so the children of the same batch, and the parts of the failure path, find them) and the
-- children's sums at its end; revert_run and fact retention keep it too; rebuild_kpi_summaries()
-- recomputes it from the facts, and gives the same rows (tests/test_kpi_summaries.py).
CREATE TABLE globalcart.kpi_order_state (
  order_id             bigint PRIMARY KEY,
  order_ts             timestamptz NOT NULL,  -- where the order is stored: its partition, and its summary bucket's day
  country_code         char(2) NOT NULL,
  channel              text NOT NULL,
  currency             char(3) NOT NULL,
  order_status         text NOT NULL,
  deleted              boolean NOT NULL,      -- deleted in its source (fact_orders.deleted_at set)
  gross_amount         numeric(14,2) NOT NULL,
  net_amount           numeric(14,2) NOT NULL,
  units                bigint NOT NULL,       -- Σ quantity of its items not deleted
  refund_amount        numeric NOT NULL,      -- Σ refund_amount of its REFUNDED returns not deleted
  delivered_shipments  integer NOT NULL,      -- its shipments with delivered_ts, not deleted
  breached_shipments   integer NOT NULL,      -- of those, sla_breached_flag
  payments             integer NOT NULL,      -- its payments not deleted
  failed_payments      integer NOT NULL       -- of those, FAILED
) WITH (fillfactor = 90);  -- (room for the in-place update of a row's sums at the end of a refresh)
COMMENT ON TABLE globalcart.kpi_order_state IS
  'One row per order, kept by the refresh: where the order is stored (order_ts: its monthly partition) and the inputs '
  'of its contribution to kpi_order_summary (globalcart.kpi_order_contribution), its children''s sums included. '
  'globalcart.rebuild_kpi_summaries() recomputes it from the facts.';
COMMENT ON COLUMN globalcart.kpi_order_state.order_ts IS
  'The order_ts the order is stored under in fact_orders (and its children under theirs): its partition.';
COMMENT ON COLUMN globalcart.kpi_order_state.gross_amount IS 'The order''s gross_amount, in its currency (column currency).';
COMMENT ON COLUMN globalcart.kpi_order_state.net_amount IS 'The order''s net_amount, in its currency (column currency).';
COMMENT ON COLUMN globalcart.kpi_order_state.refund_amount IS
  'Sum of refund_amount of the order''s REFUNDED returns not deleted, in its currency (column currency).';

-- A warehouse that already holds orders gets its state computed from the facts once the routine
-- files are in place (migrate runs the line below after them).
-- after routines: SELECT globalcart.rebuild_kpi_summaries();

-- The refresh's work tables gain what the state needs: for each order of the batch, where it was
-- stored before the batch (NULL: nowhere), found through the directory; and, for each order a batch
-- touches, whether its id lies above every stored one (fresh: nothing of it can be stored, so its
-- sums come from the batch alone) and which kinds of its rows the batch brought (for an order stored
-- before, only those children are read again).
ALTER TABLE globalcart.work_orders ADD COLUMN stored_ts timestamptz;
COMMENT ON COLUMN globalcart.work_orders.stored_ts IS
  'The order_ts the order was stored under before the batch (from kpi_order_state); NULL: not stored.';
ALTER TABLE globalcart.work_kpi_orders
  ADD COLUMN fresh boolean NOT NULL DEFAULT false,
  ADD COLUMN items boolean NOT NULL DEFAULT false,
  ADD COLUMN payments boolean NOT NULL DEFAULT false,
  ADD COLUMN shipments boolean NOT NULL DEFAULT false,
  ADD COLUMN returns boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN globalcart.work_kpi_orders.fresh IS
  'The order id lies above every one stored before the batch: it has no old contribution, and its children''s sums are the batch''s.';
COMMENT ON COLUMN globalcart.work_kpi_orders.items IS
  'The batch brought rows of the order''s items: their sums are read again (likewise payments, shipments, returns).';
