-- globalcart.kpi_summaries_begin(): the first half of keeping the KPI summaries, run by the
-- refresh right after its claim and before anything is applied. Notes the orders the batch can
-- change — every order id of the claimed orders, items, payments, shipments and returns (a
-- return can also turn its order RETURNED), with which kinds of their rows it brings and whether
-- the id lies above every stored one (fresh: the bulk path, nothing to take out) — and subtracts
-- the current contribution of the others, read from their state (globalcart.kpi_order_state;
-- globalcart.kpi_order_contributions(-1)), never from the facts. Sessions need nothing before:
-- the funnel is append-only, so their state is merged with what the batch appends, afterwards.
-- globalcart.kpi_summaries_apply() adds the new one after the batch.
CREATE OR REPLACE FUNCTION globalcart.kpi_summaries_begin()
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bound bigint;  -- the greatest order id stored (globalcart.bulk_bound): a greater one is fresh
BEGIN
  -- (each read of a distributed table a query of its own, never a subquery of an expression: docs/citus.md)
  SELECT max(s.order_id) INTO v_bound FROM globalcart.kpi_order_state s;
  SELECT globalcart.bulk_bound(greatest(v_bound, max(f.order_id))) INTO v_bound FROM globalcart.fact_orders f;
  INSERT INTO globalcart.work_kpi_orders (order_id, fresh, items, payments, shipments, returns)
  SELECT c.order_id, c.order_id > coalesce(v_bound, -9223372036854775808), bool_or(c.kind = 'i'), bool_or(c.kind = 'p'), bool_or(c.kind = 's'),
         bool_or(c.kind = 'r')
    FROM (SELECT c.order_id, 'o' AS kind FROM pg_temp.gc_claim_orders c
          UNION ALL SELECT c.order_id, 'i' FROM pg_temp.gc_claim_order_items c
          UNION ALL SELECT c.order_id, 'p' FROM pg_temp.gc_claim_payments c
          UNION ALL SELECT c.order_id, 's' FROM pg_temp.gc_claim_shipments c
          UNION ALL SELECT c.order_id, 'r' FROM pg_temp.gc_claim_returns c) AS c
   WHERE c.order_id IS NOT NULL
   GROUP BY c.order_id;
  -- the planner joins these with the facts: tell it their size
  ANALYZE globalcart.work_kpi_orders;
  PERFORM globalcart.kpi_order_contributions(-1);
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_summaries_begin() IS
  'Refresh step of the KPI summaries, before the batch: notes the orders it touches and takes out their current contribution.';
