-- CALL globalcart.refresh_for(run_for, pause): follow mode (docs/contract.md §4 and 5.3). Repeats
-- globalcart.run_incremental_refresh(), committing after each call, for run_for: after a
-- call that found nothing to do it sleeps `pause`, so a row staged while it runs is
-- applied within about pause plus one refresh. The pg_cron job of
-- schedule_incremental_refresh(follow => true) runs it every minute.
--
-- It stops early, with a NOTICE, when another session's follow loop is running (the backend
-- registered by globalcart.follow_loop_begin is alive), when another session's refresh is
-- running (a call returns skipped), or when a call fails (recorded in etl_runs; the next run
-- retries).
-- It never runs past etl_settings 'max_run_time': a procedure that COMMITs cannot run
-- under a job's statement_timeout (pg_cron would run "SET …; CALL …" as one transaction
-- block, where COMMIT is refused), so the loop bounds itself, and each call in it is
-- bounded by 'lock_timeout' and 'max_rows_per_run'.
--
-- A procedure with a SET clause may not COMMIT, nor may a SECURITY DEFINER one: this one runs
-- with its caller's rights (a globalcart_refresher member: it needs EXECUTE on the functions it
-- calls, no right on any table) and cannot pin search_path — every name in it is
-- schema-qualified instead. CALL it outside a transaction block.
CREATE OR REPLACE PROCEDURE globalcart.refresh_for(
    run_for interval DEFAULT '55 seconds', pause interval DEFAULT '1 second')
  LANGUAGE plpgsql
AS $$
DECLARE
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_deadline timestamptz;
  v_max_run_time interval;
  v_summary jsonb;
  v_calls integer := 0;
  v_runs integer := 0;
  v_claimed bigint := 0::bigint;
  v_stop text := 'run_for has passed';
BEGIN
  IF run_for IS NULL OR run_for < interval '0' OR pause IS NULL OR pause <= interval '0' THEN
    RAISE EXCEPTION 'refresh_for: run_for must be 0 or more and pause more than 0 (got %, %)', run_for, pause
      USING ERRCODE = 'GC007', HINT = 'CALL globalcart.refresh_for(''55 seconds'', ''1 second'');';
  END IF;
  v_max_run_time := globalcart.follow_loop_begin();
  COMMIT;
  IF v_max_run_time IS NULL THEN
    RAISE NOTICE 'globalcart.refresh_for: another follow loop is running; stopped';
    RETURN;
  END IF;
  v_deadline := v_started + LEAST(run_for, v_max_run_time);
  LOOP
    v_summary := globalcart.run_incremental_refresh();
    PERFORM globalcart.follow_loop_beat();
    COMMIT;
    v_calls := v_calls + 1;
    IF v_summary ->> 'status' = 'skipped' THEN
      v_stop := 'another session''s refresh is running';
      EXIT;
    ELSIF v_summary ->> 'status' = 'failed' THEN
      v_stop := pg_catalog.format('run %s failed (%s)', v_summary ->> 'run_id', v_summary #>> '{error,message}');
      EXIT;
    END IF;
    IF v_summary ->> 'run_id' IS NOT NULL THEN
      v_runs := v_runs + 1;
      v_claimed := v_claimed + (v_summary #>> '{totals,claimed}')::bigint;
    END IF;
    EXIT WHEN pg_catalog.clock_timestamp() >= v_deadline;
    IF v_summary ->> 'run_id' IS NULL THEN  -- found nothing: wait a little
      PERFORM pg_catalog.pg_sleep(extract(epoch FROM LEAST(pause, v_deadline - pg_catalog.clock_timestamp())));
      COMMIT;  -- end the sleeping transaction, so that it holds back nothing
    END IF;
  END LOOP;
  PERFORM globalcart.follow_loop_end();
  COMMIT;
  RAISE NOTICE 'globalcart.refresh_for: % calls, % runs, % rows claimed in %; stopped: %',
               v_calls, v_runs, v_claimed, pg_catalog.clock_timestamp() - v_started, v_stop;
END;
$$;
COMMENT ON PROCEDURE globalcart.refresh_for(interval, interval) IS
  'Follow mode: repeats run_incremental_refresh(), committing after each call and sleeping pause after one that found nothing, for run_for (at most max_run_time).';
