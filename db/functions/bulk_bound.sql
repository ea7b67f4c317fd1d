-- globalcart.bulk_bound(max_stored): the bound of the refresh's bulk path (docs/refresh.md). A key above every key stored (max_stored) cannot be stored: the refresh
-- looks it up nowhere — no old version, no move, no status transition, no old KPI contribution — and
-- inserts it with the same validation and quarantine as any key. Every lookup by key compares with
-- this bound. It is max_stored itself; only a session that sets `globalcart.bulk_path = off` gets the
-- greatest bigint back, so that every key is looked up as if it might be stored: the same results,
-- slower — which is how tests/test_bulk_path.py compares the two paths. A NULL max_stored (nothing
-- stored) stays NULL, so nothing is looked up (with bulk_path off, everything still is).
CREATE OR REPLACE FUNCTION globalcart.bulk_bound(p_max_stored bigint)
  RETURNS bigint
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN current_setting('globalcart.bulk_path', true) = 'off' THEN 9223372036854775807 ELSE p_max_stored END;
COMMENT ON FUNCTION globalcart.bulk_bound(bigint) IS
  'The refresh''s bulk path: keys above this bound (the greatest stored) are looked up nowhere; a session with globalcart.bulk_path = off looks every key up.';
