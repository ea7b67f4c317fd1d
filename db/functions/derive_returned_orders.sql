-- globalcart.derive_returned_orders(): the derived status of docs/contract.md §2.6. A return whose
-- return_status is not REJECTED turns its order RETURNED when the order is DELIVERED or
-- COMPLETED. Looked at for the orders this refresh touched: those of the batch's orders
-- and of its returns (globalcart.work_orders, globalcart.work_returns), so a return that
-- arrived before its order was delivered takes effect when the delivery does. The update
-- goes through the BEFORE UPDATE audit trigger; the order's updated_at becomes the
-- return's when that is later, so an older order version replayed afterwards is stale; the
-- order's KPI state (globalcart.kpi_order_state) takes the status too.
-- Returns the number of orders turned RETURNED.
CREATE OR REPLACE FUNCTION globalcart.derive_returned_orders()
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_returned bigint;
BEGIN
  -- Driven by the batch's orders, with their order_ts (their partition): one index probe into
  -- one partition of fact_returns per order, whatever the size of the warehouse. Only the orders
  -- whose batch version is DELIVERED or COMPLETED and those of the batch's returns not REJECTED can
  -- turn now (a batch version that is not stored, being stale, changed nothing; the stored rows
  -- decide below).
  WITH returned AS (
  UPDATE globalcart.fact_orders o
     SET order_status = 'RETURNED',
         updated_at = greatest(o.updated_at, r.last_return_update)
    FROM (SELECT t.order_id, t.order_ts,
                 (SELECT max(fr.updated_at) FROM globalcart.fact_returns fr
                   WHERE fr.order_id = t.order_id AND fr.order_ts = t.order_ts AND fr.return_status <> 'REJECTED'
                     AND fr.deleted_at IS NULL)
                   AS last_return_update
            FROM (SELECT w.order_id, w.order_ts FROM globalcart.work_orders w
                   WHERE w.order_status IN ('DELIVERED', 'COMPLETED')
                  UNION
                  SELECT w.order_id, w.order_ts FROM globalcart.work_returns w
                   WHERE w.return_status <> 'REJECTED' AND NOT w.deleted) AS t) AS r
   WHERE o.order_id = r.order_id AND o.order_ts = r.order_ts
     AND r.last_return_update IS NOT NULL
     AND o.order_status IN ('DELIVERED', 'COMPLETED')
  RETURNING o.order_id
  ), state AS (  -- and in the order's KPI state (globalcart.kpi_order_state)
    UPDATE globalcart.kpi_order_state s SET order_status = 'RETURNED' FROM returned r WHERE s.order_id = r.order_id
  )
  SELECT count(*) INTO v_returned FROM returned;
  -- (A deleted order may turn RETURNED too: the KPIs leave it out all the same, and a filter on
  -- deleted_at here would have the planner, without statistics on it in a fresh partition, guess
  -- 0.5 % of fact_orders and join it by a nested loop over the whole table.)
  RETURN v_returned;
END;
$$;
COMMENT ON FUNCTION globalcart.derive_returned_orders() IS
  'Turns DELIVERED/COMPLETED orders with a non-REJECTED return RETURNED (audited); looks only at the orders of this refresh''s batch.';
