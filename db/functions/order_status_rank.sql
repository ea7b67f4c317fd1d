-- Order status rules (CONTRACT 2.6): statuses rank PLACED < PAID < SHIPPED < DELIVERED <
-- COMPLETED < RETURNED; CANCELLED is reachable only from PLACED or PAID and never left.
--
-- These run once per row inside the refresh's upsert (ON CONFLICT … DO UPDATE … WHERE), so
-- they are written to be inlined by the planner: SQL-standard bodies (RETURN …, parsed and
-- bound when created, so the caller's search_path plays no part) and no SET search_path
-- clause, which would forbid inlining and cost a configuration change per row.

CREATE OR REPLACE FUNCTION globalcart.order_status_rank(p_status text)
  RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE p_status
         WHEN 'PLACED' THEN 1
         WHEN 'PAID' THEN 2
         WHEN 'SHIPPED' THEN 3
         WHEN 'DELIVERED' THEN 4
         WHEN 'COMPLETED' THEN 5
         WHEN 'RETURNED' THEN 6
       END;
COMMENT ON FUNCTION globalcart.order_status_rank(text) IS
  'Rank of an order status on the forward path (NULL for CANCELLED and unknown values).';
