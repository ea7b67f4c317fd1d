-- CALL globalcart.drain_staging(): repeats globalcart.run_incremental_refresh(), committing
-- after each call, until no source has a backlog (docs/contract.md §5.2) — for a backlog larger than
-- etl_settings 'max_rows_per_run', after an outage or a bulk load. A NOTICE reports the
-- calls and rows. A call that is skipped (another refresh is running) or fails ends it
-- with an error (GC005; the failed run is recorded and committed first).
--
-- A procedure with a SET clause may not COMMIT, so this one cannot pin search_path:
-- every name in it is schema-qualified instead. CALL it outside a transaction block.
CREATE OR REPLACE PROCEDURE globalcart.drain_staging()
  LANGUAGE plpgsql
AS $$
DECLARE
  v_summary jsonb;
  v_calls integer := 0;
  v_claimed bigint := 0::bigint;
BEGIN
  LOOP
    v_summary := globalcart.run_incremental_refresh();
    COMMIT;
    v_calls := v_calls + 1;
    IF v_summary ->> 'status' = 'skipped' THEN
      RAISE EXCEPTION 'drain_staging: another refresh is running (after % calls)', v_calls
        USING ERRCODE = 'GC005', HINT = 'It applies what is staged too; CALL globalcart.drain_staging() again later.';
    ELSIF v_summary ->> 'status' = 'failed' THEN
      RAISE EXCEPTION 'drain_staging: refresh run % failed: % %', v_summary ->> 'run_id',
                      v_summary #>> '{error,sqlstate}', v_summary #>> '{error,message}'
        USING ERRCODE = 'GC005', HINT = 'Nothing of that run was applied; fix the cause and CALL it again.';
    END IF;
    v_claimed := v_claimed + (v_summary #>> '{totals,claimed}')::bigint;
    EXIT WHEN (v_summary #>> '{totals,backlog}')::bigint = 0;
  END LOOP;
  RAISE NOTICE 'globalcart.drain_staging: % calls, % rows claimed; no backlog left', v_calls, v_claimed;
END;
$$;
COMMENT ON PROCEDURE globalcart.drain_staging() IS
  'Repeats run_incremental_refresh(), committing after each call, until no source has a backlog.';
