-- The event ids of fact_funnel_events written outside the refresh (a backfill, a hand-made fix):
-- an AFTER INSERT statement trigger adds them to globalcart.funnel_event_keys, the stream's unique
-- key across monthly partitions, so that the refresh counts a replay of one as a duplicate (and
-- waits for a writer that has not committed yet). The refresh records the ids of what it appends
-- itself, before appending (globalcart.apply_funnel_events), so the trigger does nothing in a
-- refresh (globalcart.current_run_id() is set there): one statement, not one probe per row.
CREATE OR REPLACE FUNCTION globalcart.funnel_event_keys_after_insert()
  RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- The transition table of the trigger, for plpgsql_check:  @plpgsql_check_options: newtable = new_rows
BEGIN
  IF globalcart.current_run_id() IS NULL THEN
    INSERT INTO globalcart.funnel_event_keys (event_id, session_id, event_ts)
    SELECT n.event_id, n.session_id, n.event_ts FROM new_rows n
    ON CONFLICT (event_id) DO NOTHING;
  END IF;
  RETURN NULL;
END;
$$;
COMMENT ON FUNCTION globalcart.funnel_event_keys_after_insert() IS
  'Records in funnel_event_keys the event ids of funnel events inserted outside the refresh.';
CREATE OR REPLACE TRIGGER funnel_event_keys_after_insert
  AFTER INSERT ON globalcart.fact_funnel_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION globalcart.funnel_event_keys_after_insert();
