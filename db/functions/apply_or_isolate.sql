-- globalcart.apply_or_isolate(source, run_id, now, latest_valid, orphan_cutoff): one source's
-- claimed batch, applied so that no row can stop it (docs/contract.md §2.7, docs/design.md rule 8).
--
-- Fast path: globalcart.run_source_step() over the whole batch, a few set-based statements,
-- inside a subtransaction. Failure path, only when that raises an error the rows can cause
-- (globalcart.is_row_error): the subtransaction is rolled back and
-- globalcart.isolate_failing_rows() applies the batch in ever smaller parts until the rows
-- that fail are found, rejects each of them with the error's SQLSTATE and message, and
-- applies every other row. Any other error (a lock timeout, a cancel, a bad setting)
-- propagates: the whole call fails and is recorded (run_incremental_refresh).
CREATE OR REPLACE FUNCTION globalcart.apply_or_isolate(
    p_source text, p_run_id bigint, p_now timestamptz, p_latest_valid timestamptz, p_orphan_cutoff timestamptz)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_sqlstate text;
BEGIN
  BEGIN
    RETURN globalcart.run_source_step(p_source, p_run_id, p_now, p_latest_valid, p_orphan_cutoff);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_sqlstate = RETURNED_SQLSTATE;
    IF NOT globalcart.is_row_error(v_sqlstate) THEN
      RAISE;
    END IF;
  END;
  RETURN globalcart.isolate_failing_rows(p_source, p_run_id, p_now, p_latest_valid, p_orphan_cutoff);
END;
$$;
COMMENT ON FUNCTION globalcart.apply_or_isolate(text, bigint, timestamptz, timestamptz, timestamptz) IS
  'Applies one source''s claimed batch in one go; when a row makes that fail, isolates and rejects the failing rows and applies the rest.';
