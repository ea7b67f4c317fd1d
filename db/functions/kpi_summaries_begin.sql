-- globalcart.kpi_summaries_begin(): the first half of keeping the KPI summaries, run by the
-- refresh right after its claim and before anything is applied. Notes the orders the batch can
-- change — every order id of the claimed orders, items, payments, shipments and returns (a
-- return can also turn its order RETURNED) — and subtracts their current contribution
-- (globalcart.kpi_order_contributions(-1)). Sessions need nothing before: the funnel is
-- append-only, so their state is merged with what the batch appends, afterwards.
-- globalcart.kpi_summaries_apply() adds the new one after the batch.
CREATE OR REPLACE FUNCTION globalcart.kpi_summaries_begin()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO globalcart.work_kpi_orders (order_id)
  SELECT c.order_id FROM pg_temp.gc_claim_orders c WHERE c.order_id IS NOT NULL
  UNION SELECT c.order_id FROM pg_temp.gc_claim_order_items c WHERE c.order_id IS NOT NULL
  UNION SELECT c.order_id FROM pg_temp.gc_claim_payments c WHERE c.order_id IS NOT NULL
  UNION SELECT c.order_id FROM pg_temp.gc_claim_shipments c WHERE c.order_id IS NOT NULL
  UNION SELECT c.order_id FROM pg_temp.gc_claim_returns c WHERE c.order_id IS NOT NULL;
  -- the planner joins these with the facts: tell it their size
  ANALYZE globalcart.work_kpi_orders;
  PERFORM globalcart.kpi_order_contributions(-1);
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_summaries_begin() IS
  'Refresh step of the KPI summaries, before the batch: notes the orders it touches and takes out their current contribution.';
