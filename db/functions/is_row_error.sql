-- globalcart.is_row_error(sqlstate): whether an error that stopped a source's batch can
-- have been caused by the rows themselves, so that the refresh isolates and rejects the
-- rows that cause it (docs/contract.md §2.7): data exceptions (class 22, e.g. a value out of range),
-- integrity violations (23) and program limits (54, e.g. "index row requires 10272 bytes").
-- Everything else — a lock or statement timeout, a cancel, a deadlock, a full disk, a
-- missing privilege, a bad setting (GC001) — says nothing about the rows: the call fails,
-- is recorded as failed, and the next call retries the same rows.
CREATE OR REPLACE FUNCTION globalcart.is_row_error(p_sqlstate text)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT left(p_sqlstate, 2) IN ('22', '23', '54')
$$;
COMMENT ON FUNCTION globalcart.is_row_error(text) IS
  'true for the SQLSTATE classes a staged row can cause (22 data exception, 23 integrity violation, 54 program limit); the refresh isolates those rows.';
