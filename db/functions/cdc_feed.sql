-- globalcart.cdc_feed(): the state of this warehouse's CDC feed (docs/cdc.md), the logical replication subscription globalcart_cdc that `globalcart cdc attach`
-- creates — no row when there is none. Read from the server's catalog and statistics (what the
-- warehouse side can see: no connection to the source):
--   enabled         the subscription is enabled
--   worker_pid      its apply worker (NULL: not running)
--   last_msg_at     the last message received from the source (changes or keepalives: a
--                   healthy idle feed hears from its source every wal_sender_timeout / 2)
--   apply_errors, sync_errors   errors since the statistics were reset
--   tables_syncing  published tables whose initial copy has not finished
--   problem         why the feed is failing, NULL when it is not: disabled; its apply worker not
--                   running (the source unreachable, its slot gone, a change failed to apply —
--                   the worker exits and is restarted every wal_retrieve_retry_interval); or
--                   nothing heard from the source for two minutes.
-- pipeline_health marks the sources the feed stages into failing with this reason; `globalcart
-- cdc status` adds what only the source can tell (its slot, the bytes not yet sent).
CREATE OR REPLACE FUNCTION globalcart.cdc_feed()
  RETURNS TABLE (subscription text, enabled boolean, worker_pid integer, last_msg_at timestamptz,
                 apply_errors bigint, sync_errors bigint, tables_syncing integer, problem text)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.subname::text, s.subenabled, w.pid, w.last_msg_receipt_time,
         coalesce(st.apply_error_count, 0), coalesce(st.sync_error_count, 0),
         (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate <> 'r')::integer,
         CASE WHEN NOT s.subenabled
              THEN format('the CDC subscription %s is disabled: nothing arrives from the source '
                          '(ALTER SUBSCRIPTION %s ENABLE, or globalcart cdc detach)', s.subname, s.subname)
              WHEN w.pid IS NULL
              THEN format('the CDC subscription %s has no apply worker running: the source is unreachable, its '
                          'replication slot %s is gone, or a change failed to apply (%s apply errors so far); '
                          'globalcart cdc status and the server log say which', s.subname,
                          coalesce(s.subslotname::text, 'NONE'), coalesce(st.apply_error_count, 0))
              WHEN w.last_msg_receipt_time < now() - interval '2 minutes'
              THEN format('the CDC subscription %s has heard nothing from the source since %s', s.subname,
                          w.last_msg_receipt_time)
         END
    FROM pg_subscription s
    LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL
    LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
   WHERE s.subname = 'globalcart_cdc'
     AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
$$;
COMMENT ON FUNCTION globalcart.cdc_feed() IS
  'The CDC subscription globalcart_cdc of this database: enabled, apply worker, last message, errors, and the problem when failing.';
