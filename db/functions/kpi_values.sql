-- globalcart.kpi_values(from_ts, to_ts, country_code, channel): the fourteen KPIs of
-- docs/contract.md §3 over a slice, in contract order (kpi_order 1-14); with no arguments, over the whole
-- warehouse (what snapshot_kpis stores). NULL means no bound. The sums of the slice are
-- globalcart.kpi_sums' (from the summaries the refresh keeps; what the slice counts is said there),
-- the KPIs globalcart.kpi_from_sums'.
--   - Order-grain KPIs (1-10) count the orders with order_ts in [from_ts, to_ts) of that country
--     and channel, with all their items, payments, shipments and returns.
--   - Funnel KPIs (11-14) count the sessions whose first event is in [from_ts, to_ts), in that
--     channel (the channel of the first event); they are NULL when a country is given (a session
--     has none) and absent when fact_funnel_events does not exist.
-- Money is USD with today's dim_currency.usd_rate; a ratio with a zero denominator is NULL; an
-- empty slice (from_ts not before to_ts, a country or channel with no data) gives counts and sums
-- 0 and ratios NULL.
CREATE OR REPLACE FUNCTION globalcart.kpi_values(
    from_ts timestamptz DEFAULT NULL, to_ts timestamptz DEFAULT NULL,
    country_code char(2) DEFAULT NULL, channel text DEFAULT NULL)
  RETURNS TABLE (kpi_order integer, kpi_name text, kpi_value numeric)
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_sums globalcart.kpi_partial := globalcart.kpi_sums(kpi_values.from_ts, kpi_values.to_ts,
                                                       kpi_values.country_code, kpi_values.channel);
BEGIN
  RETURN QUERY
  SELECT k.kpi_order, k.kpi_name, k.kpi_value
    FROM globalcart.kpi_values_of(v_sums, kpi_values.country_code IS NULL) AS k
   ORDER BY k.kpi_order;
END;
$$;
COMMENT ON FUNCTION globalcart.kpi_values(timestamptz, timestamptz, char, text) IS
  'The KPIs of docs/contract.md §3 over a slice (order_ts / first event in [from_ts, to_ts), country, channel; NULL = all), from the summaries the refresh keeps; whole warehouse with no arguments.';
