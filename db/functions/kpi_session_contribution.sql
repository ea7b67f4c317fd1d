-- globalcart.kpi_session_contribution(purchased, carted, payment_failed, max_cart_value_usd): the
-- per-session KPI rule, written once — what one session (a row of globalcart.kpi_session_state)
-- adds to the funnel's partial state (globalcart.kpi_funnel_summary's columns). docs/contract.md §3:
-- conversion counts sessions with a PURCHASE; abandonment, sessions with an ADD_TO_CART and no
-- PURCHASE; revenue lost to failures, the greatest cart value of sessions with a PAYMENT_FAILED and
-- no PURCHASE; to abandonment, of sessions with an ADD_TO_CART, no PAYMENT_FAILED and no PURCHASE.
-- Called by the refresh (kpi_summaries_apply), rebuild_kpi_summaries, kpi_values (parts of a day)
-- and kpi_values_as_of; inlined like globalcart.kpi_order_contribution (no SET clause, no table).
CREATE OR REPLACE FUNCTION globalcart.kpi_session_contribution(
    p_purchased boolean, p_carted boolean, p_payment_failed boolean, p_max_cart_value_usd numeric)
  RETURNS TABLE (sessions integer, purchased_sessions integer, carted_sessions integer, abandoned_sessions integer,
                 lost_failures_usd numeric, lost_abandonment_usd numeric)
  LANGUAGE sql IMMUTABLE
AS $$
  SELECT 1,
         $1::integer,
         $2::integer,
         ($2 AND NOT $1)::integer,
         CASE WHEN $3 AND NOT $1 THEN coalesce($4, 0) ELSE 0 END,
         CASE WHEN $2 AND NOT $3 AND NOT $1 THEN coalesce($4, 0) ELSE 0 END
$$;
COMMENT ON FUNCTION globalcart.kpi_session_contribution(boolean, boolean, boolean, numeric) IS
  'The per-session KPI rule (docs/contract.md §3): one session''s contribution to kpi_funnel_summary from its flags and greatest '
  'cart value; inlined into the refresh, the rebuild and the KPI reads.';
