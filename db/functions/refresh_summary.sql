-- globalcart.refresh_summary(run_id, status, started_at, sources, extra): the jsonb a refresh
-- call returns (docs/contract.md §2.11), built the same way on every path (ok, failed, skipped,
-- nothing staged):
--   {"run_id", "status", "started_at", "finished_at", "duration_ms",
--    "<source>": {counts, "backlog"}…, "sources": {"<source>": {…}…}, "totals": {counts}} || extra
-- sources holds one object per source (globalcart.source_stats() plus "backlog"); totals
-- adds them up key by key (a key that is null everywhere, like a skipped call's backlog,
-- stays null).
CREATE OR REPLACE FUNCTION globalcart.refresh_summary(
    p_run_id bigint, p_status text, p_started timestamptz, p_sources jsonb, p_extra jsonb DEFAULT '{}')
  RETURNS jsonb
  LANGUAGE sql VOLATILE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object('run_id', p_run_id, 'status', p_status, 'started_at', p_started,
                            'finished_at', f.finished_at,
                            'duration_ms', round(extract(epoch FROM f.finished_at - p_started) * 1000, 1))
         || p_sources
         || jsonb_build_object(
              'sources', p_sources,
              'totals', (SELECT jsonb_object_agg(t.key, t.total)
                           FROM (SELECT c.key, sum(c.value::numeric)::bigint AS total
                                   FROM jsonb_each(p_sources) AS s, jsonb_each_text(s.value) AS c
                                  GROUP BY c.key) AS t))
         || coalesce(p_extra, '{}'::jsonb)
    FROM (SELECT clock_timestamp() AS finished_at) AS f
$$;
COMMENT ON FUNCTION globalcart.refresh_summary(bigint, text, timestamptz, jsonb, jsonb) IS
  'The jsonb summary of a refresh call: run_id, status, times, one object of counts per source (also under "sources"), and their totals.';
