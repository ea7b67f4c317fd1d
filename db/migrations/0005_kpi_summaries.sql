-- 0005_kpi_summaries: KPIs kept as partial state by the refresh (docs/design.md rule 9), so that
-- reading them costs the number of days, not of rows. Counts and sums only — never ratios —
-- which kpi_values() turns into the KPIs of docs/contract.md §3 when read. The refresh keeps them
-- in the transaction that changes the facts (globalcart.kpi_summaries_begin / _apply): for each
-- order or session its batch touched it subtracts the old contribution and adds the new one.
-- globalcart.rebuild_kpi_summaries() recomputes them from the facts, and gives the same rows.
-- Days are UTC days.

-- Order grain: per UTC day of order_ts × country × channel × currency. Amounts stay in the
-- order's currency (converted with dim_currency.usd_rate when read, so a new rate needs no
-- rebuild). Children count in their order's bucket, whatever their own times.
CREATE TABLE globalcart.kpi_order_summary (
  order_day            date NOT NULL,
  country_code         char(2) NOT NULL,
  channel              text NOT NULL,
  currency             char(3) NOT NULL,
  orders               bigint NOT NULL,   -- every order (a bucket with none left is deleted)
  live_orders          bigint NOT NULL,   -- orders not CANCELLED
  gross_amount         numeric NOT NULL,  -- of live orders
  net_amount           numeric NOT NULL,  -- of live orders
  units                bigint NOT NULL,   -- quantity of the items of live orders
  returned_orders      bigint NOT NULL,   -- orders RETURNED
  delivered_orders     bigint NOT NULL,   -- orders DELIVERED, COMPLETED or RETURNED
  refund_amount        numeric NOT NULL,  -- of REFUNDED returns (of any order)
  delivered_shipments  bigint NOT NULL,   -- shipments with delivered_ts
  breached_shipments   bigint NOT NULL,   -- of those, sla_breached_flag
  payments             bigint NOT NULL,   -- every payment
  failed_payments      bigint NOT NULL,   -- payments FAILED
  PRIMARY KEY (order_day, country_code, channel, currency)
);
COMMENT ON TABLE globalcart.kpi_order_summary IS
  'Partial state of the order-grain KPIs per UTC day of order_ts, country, channel and currency: counts and sums in the '
  'order''s currency, kept by the refresh in O(delta); a bucket with no order left is deleted. '
  'globalcart.rebuild_kpi_summaries() recomputes it from the facts.';
COMMENT ON COLUMN globalcart.kpi_order_summary.gross_amount IS 'Sum of gross_amount of live orders, in currency (column currency).';
COMMENT ON COLUMN globalcart.kpi_order_summary.net_amount IS 'Sum of net_amount of live orders, in currency (column currency).';
COMMENT ON COLUMN globalcart.kpi_order_summary.refund_amount IS
  'Sum of refund_amount of REFUNDED returns of the bucket''s orders, in currency (column currency).';

-- Funnel: one row per session (its first event and the flags the funnel KPIs need), and the
-- sessions counted per UTC day of their first event × the channel of that event.
CREATE TABLE globalcart.kpi_session_state (
  session_id          text PRIMARY KEY,
  first_event_ts      timestamptz NOT NULL,
  first_event_id      uuid NOT NULL,      -- breaks a tie of event_ts: the lowest event_id is first
  channel             text NOT NULL,      -- of the first event
  purchased           boolean NOT NULL,   -- a PURCHASE
  carted              boolean NOT NULL,   -- an ADD_TO_CART
  payment_failed      boolean NOT NULL,   -- a PAYMENT_FAILED
  max_cart_value_usd  numeric             -- greatest cart_value_usd (NULL when none has one)
);
CREATE INDEX kpi_session_state_first_event_idx ON globalcart.kpi_session_state (first_event_ts);
COMMENT ON TABLE globalcart.kpi_session_state IS
  'Per session of fact_funnel_events: first event (time, id, channel), PURCHASE / ADD_TO_CART / PAYMENT_FAILED flags and '
  'greatest cart value; kept by the refresh for the sessions its batch touched.';
COMMENT ON COLUMN globalcart.kpi_session_state.max_cart_value_usd IS 'Greatest cart_value_usd of the session''s events, in USD.';

CREATE TABLE globalcart.kpi_funnel_summary (
  session_day          date NOT NULL,     -- UTC day of the session's first event
  channel              text NOT NULL,     -- channel of the session's first event
  sessions             bigint NOT NULL,
  purchased_sessions   bigint NOT NULL,   -- with a PURCHASE
  carted_sessions      bigint NOT NULL,   -- with an ADD_TO_CART
  abandoned_sessions   bigint NOT NULL,   -- with an ADD_TO_CART and no PURCHASE
  lost_failures_usd    numeric NOT NULL,  -- max cart value of sessions with PAYMENT_FAILED and no PURCHASE
  lost_abandonment_usd numeric NOT NULL,  -- max cart value of sessions with ADD_TO_CART, no PAYMENT_FAILED, no PURCHASE
  PRIMARY KEY (session_day, channel)
);
COMMENT ON TABLE globalcart.kpi_funnel_summary IS
  'Partial state of the funnel KPIs per UTC day of a session''s first event and its channel (from kpi_session_state).';
COMMENT ON COLUMN globalcart.kpi_funnel_summary.lost_failures_usd IS
  'Sum of the greatest cart_value_usd of sessions with PAYMENT_FAILED and no PURCHASE, in USD.';
COMMENT ON COLUMN globalcart.kpi_funnel_summary.lost_abandonment_usd IS
  'Sum of the greatest cart_value_usd of sessions with ADD_TO_CART, no PAYMENT_FAILED and no PURCHASE, in USD.';

-- A warehouse that already holds facts gets its summaries computed from them once the routine
-- files are in place (migrate runs the line below after them).
-- after routines: SELECT globalcart.rebuild_kpi_summaries();
