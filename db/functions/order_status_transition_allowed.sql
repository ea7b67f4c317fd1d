-- Order status rules (docs/contract.md §2.6): statuses rank PLACED < PAID < SHIPPED < DELIVERED <
-- COMPLETED < RETURNED; CANCELLED is reachable only from PLACED or PAID and never left.
--
-- These run once per row inside the refresh's upsert (ON CONFLICT … DO UPDATE … WHERE), so
-- they are written to be inlined by the planner: SQL-standard bodies (RETURN …, parsed and
-- bound when created, so the caller's search_path plays no part) and no SET search_path
-- clause, which would forbid inlining and cost a configuration change per row.

CREATE OR REPLACE FUNCTION globalcart.order_status_transition_allowed(p_from text, p_to text)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
         WHEN p_from = p_to THEN true
         WHEN p_from = 'CANCELLED' THEN false
         WHEN p_to = 'CANCELLED' THEN p_from IN ('PLACED', 'PAID')
         ELSE coalesce(globalcart.order_status_rank(p_to) >= globalcart.order_status_rank(p_from), false)
       END;
COMMENT ON FUNCTION globalcart.order_status_transition_allowed(text, text) IS
  'Whether a stored order in status p_from may take status p_to: never backwards, CANCELLED only from PLACED or PAID, never out of CANCELLED.';
