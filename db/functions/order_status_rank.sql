-- Order status rules (docs/contract.md §2.6): statuses rank PLACED < PAID < SHIPPED < DELIVERED <
-- COMPLETED < RETURNED; CANCELLED is reachable only from PLACED or PAID and never left.
--
-- These run once per row inside the refresh's upsert (ON CONFLICT … DO UPDATE … WHERE), so
-- they are written to be inlined by the planner: SQL-standard bodies (RETURN …, parsed and
-- bound when created, so the caller's search_path plays no part) and no SET search_path
-- clause, which would forbid inlining and cost a configuration change per row. The rank is a
-- position in a list rather than a CASE on the status: Citus deparses an inlined `CASE x WHEN …`
-- wrongly when it sends a statement to its shards (`CASE x WHEN NULL::boolean …`).

CREATE OR REPLACE FUNCTION globalcart.order_status_rank(p_status text)
  RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN array_position(ARRAY['PLACED', 'PAID', 'SHIPPED', 'DELIVERED', 'COMPLETED', 'RETURNED'], p_status);
COMMENT ON FUNCTION globalcart.order_status_rank(text) IS
  'Rank of an order status on the forward path (NULL for CANCELLED and unknown values).';
