-- globalcart.history_tables(): the tables with history (docs/contract.md §7) — every fact and dimension
-- that has an audit table globalcart.audit_<table> — read from the catalog, with what the history
-- functions need to write their SQL for each:
--   key_columns  the row's key: the primary key's columns without the partition column
--                (order_id, payment_id — a row keeps its key when it moves to another month)
--   key_join     x.<col> = y.<col> AND … over the key
--   columns      the columns a version is written back with: all but generated ones and
--                loaded_run_id (which says who wrote the version)
--   order_grain  the table is fact_orders or one of its children (globalcart.etl_sources)
CREATE OR REPLACE FUNCTION globalcart.history_tables()
  RETURNS TABLE (table_name text, audit_table text, key_columns text, key_join text, columns text,
                 order_grain boolean)
  LANGUAGE sql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT t.relname::text, a.relname::text,
         (SELECT string_agg(quote_ident(att.attname), ', ' ORDER BY k.n)
            FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
           WHERE i.indrelid = t.oid AND i.indisprimary AND NOT k.attnum = ANY (coalesce(p.partattrs::int2[], '{}'))),
         (SELECT string_agg(format('x.%1$I = y.%1$I', att.attname), ' AND ' ORDER BY k.n)
            FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
           WHERE i.indrelid = t.oid AND i.indisprimary AND NOT k.attnum = ANY (coalesce(p.partattrs::int2[], '{}'))),
         (SELECT string_agg(quote_ident(att.attname), ', ' ORDER BY att.attnum)
            FROM pg_attribute att
           WHERE att.attrelid = t.oid AND att.attnum > 0 AND NOT att.attisdropped AND att.attgenerated = ''
             AND att.attname <> 'loaded_run_id'),
         EXISTS (SELECT 1 FROM globalcart.etl_sources s
                  WHERE s.fact_table = t.relname AND (s.source_name = 'orders' OR s.waits_for_order))
    FROM pg_class t
    JOIN pg_class a ON a.relnamespace = t.relnamespace AND a.relname = 'audit_' || t.relname
    LEFT JOIN pg_partitioned_table p ON p.partrelid = t.oid
   WHERE t.relnamespace = 'globalcart'::regnamespace AND t.relkind IN ('r', 'p') AND a.relkind IN ('r', 'p')
     AND NOT t.relispartition AND NOT a.relispartition
     AND EXISTS (SELECT 1 FROM pg_attribute l WHERE l.attrelid = t.oid AND l.attname = 'loaded_run_id' AND NOT l.attisdropped)
   ORDER BY t.relname
$$;
COMMENT ON FUNCTION globalcart.history_tables() IS
  'The facts and dimensions with history (an audit table), with their key, key join and columns, from the catalog.';
