-- globalcart.add_stats(a, b): two per-source count objects added key by key (a key missing
-- from one counts as 0). Used where one source's batch is applied in parts (isolating rows
-- that fail) and for the totals over all sources.
CREATE OR REPLACE FUNCTION globalcart.add_stats(p_a jsonb, p_b jsonb)
  RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_object_agg(k.key, k.total), '{}'::jsonb)
  FROM (SELECT e.key, sum(e.value::numeric)::bigint AS total
          FROM (SELECT * FROM jsonb_each_text(coalesce(p_a, '{}'::jsonb))
                UNION ALL
                SELECT * FROM jsonb_each_text(coalesce(p_b, '{}'::jsonb))) AS e
         GROUP BY e.key) AS k
$$;
COMMENT ON FUNCTION globalcart.add_stats(jsonb, jsonb) IS
  'Adds two per-source count objects of a refresh summary key by key.';
