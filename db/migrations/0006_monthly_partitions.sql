-- 0006_monthly_partitions: the large tables partitioned by month (UTC), so that a BI query of one
-- month reads one partition and a month past fact_retention is dropped whole.
--   fact_orders                 by order_ts
--   fact_order_items, fact_payments, fact_shipments, fact_returns
--                               by their order's order_ts, carried on the row (column order_ts,
--                               kept equal to the order's by the refresh)
--   fact_funnel_events          by event_ts
--   audit_*                     by audited_at
-- Primary keys keep their contract columns first and add the partition column (docs/contract.md §1).
-- Partitions are plain tables named <table>_pYYYY_MM, attached for [first of the month, first of
-- the next) in UTC; the refresh creates the ones its batch needs (globalcart.add_month_partitions),
-- so a row for a month without a partition never fails it; <table>_default takes what anything
-- else writes for a month without one, until that month's partition is made. Each table is rebuilt here: a new
-- partitioned table with the old one's columns, constraints, defaults, indexes and comments, its
-- rows copied, the old table dropped (the audit triggers are installed again by migrate).

-- Creates the monthly partitions of a table for the given months (migrate's copy of the rule that
-- globalcart.add_month_partitions applies later; this one lives only for this migration).
CREATE FUNCTION pg_temp.gc_add_partitions(p_table text, p_months date[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  v_month date;
  v_name text;
BEGIN
  FOR v_month IN SELECT DISTINCT date_trunc('month', m)::date FROM unnest(p_months) AS m WHERE m IS NOT NULL LOOP
    v_name := p_table || '_p' || to_char(v_month, 'YYYY_MM');
    CONTINUE WHEN to_regclass(format('globalcart.%I', v_name)) IS NOT NULL;
    EXECUTE format('CREATE TABLE globalcart.%I (LIKE globalcart.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING GENERATED INCLUDING COMMENTS)%s', v_name, p_table,
                   CASE WHEN p_table LIKE 'fact\_%' THEN ' WITH (fillfactor = 85)' ELSE '' END);
    EXECUTE format('ALTER TABLE globalcart.%I ATTACH PARTITION globalcart.%I FOR VALUES FROM (%L) TO (%L)',
                   p_table, v_name, v_month::timestamp AT TIME ZONE 'UTC',
                   (v_month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', v_name,
                   format('Partition of %s for %s (UTC).', p_table, to_char(v_month, 'YYYY-MM')));
  END LOOP;
END;
$$;

-- Rebuilds globalcart.<p_table> partitioned by range of p_column, its primary key the old one's
-- columns then p_column. p_rows is the SELECT of its rows (from <p_table>_before_0006, the old table
-- renamed); with p_add_order_ts the table gains the column order_ts (an order-grain child, and
-- its audit table). Partitions: the months of the rows, the current month and the next.
CREATE FUNCTION pg_temp.gc_partition(p_table text, p_column text, p_rows text, p_add_order_ts boolean)
  RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_old text := p_table || '_before_0006';
  v_comment text := obj_description(format('globalcart.%I', p_table)::regclass, 'pg_class');
  v_indexes text[];
  v_index record;
  v_identity boolean;
  v_columns text;
  v_months date[];
  v_sql text;
  v_key text[];
BEGIN
  SELECT array_agg(a.attname::text ORDER BY k.n) INTO v_key
    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = format('globalcart.%I', p_table)::regclass AND i.indisprimary;
  -- the other indexes, to create again under their names
  SELECT array_agg(pg_get_indexdef(i.indexrelid) ORDER BY c.relname) INTO v_indexes
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid = format('globalcart.%I', p_table)::regclass AND NOT i.indisprimary;
  FOR v_index IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  WHERE i.indrelid = format('globalcart.%I', p_table)::regclass LOOP
    EXECUTE format('ALTER INDEX globalcart.%I RENAME TO %I', v_index.relname, v_index.relname || '_0006');
  END LOOP;
  v_identity := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = format('globalcart.%I', p_table)::regclass
                                                      AND a.attname = 'audit_id' AND a.attidentity <> '');
  EXECUTE format('ALTER TABLE globalcart.%I RENAME TO %I', p_table, v_old);

  -- the new table: the old one's columns in their order (an order-grain child, and its audit
  -- table, gain order_ts after order_id), defaults, generated columns, NOT NULL, CHECKs, comments
  SELECT string_agg(
           format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod))
           || CASE WHEN a.attgenerated = 's' THEN format(' GENERATED ALWAYS AS (%s) STORED', pg_get_expr(d.adbin, d.adrelid))
                   WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
                   ELSE '' END
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
           || CASE WHEN p_add_order_ts AND a.attname = 'order_id'
                   THEN ', order_ts timestamptz' || CASE WHEN p_table LIKE 'fact\_%' THEN ' NOT NULL' ELSE '' END
                   ELSE '' END,
           ', ' ORDER BY a.attnum)
    INTO v_sql
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attrelid = format('globalcart.%I', v_old)::regclass AND a.attnum > 0 AND NOT a.attisdropped;
  EXECUTE format('CREATE TABLE globalcart.%I (%s) PARTITION BY RANGE (%I)', p_table, v_sql, p_column);
  FOR v_index IN SELECT c.conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
                  WHERE c.conrelid = format('globalcart.%I', v_old)::regclass AND c.contype = 'c' ORDER BY c.conname LOOP
    EXECUTE format('ALTER TABLE globalcart.%I ADD CONSTRAINT %I %s', p_table, v_index.conname, v_index.def);
  END LOOP;
  FOR v_index IN SELECT a.attname, col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute a
                  WHERE a.attrelid = format('globalcart.%I', v_old)::regclass AND a.attnum > 0 AND NOT a.attisdropped
                    AND col_description(a.attrelid, a.attnum) IS NOT NULL LOOP
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.%I IS %L', p_table, v_index.attname, v_index.comment);
  END LOOP;
  IF p_add_order_ts THEN
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.order_ts IS %L', p_table,
                   'order_ts of the row''s order, kept equal to it by the refresh: the partition column.');
  END IF;
  EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', p_table, v_comment);

  -- a default partition takes a row of a month that has no partition yet (a manual change, an
  -- audit row backdated by hand); globalcart.add_month_partitions moves such rows to their month
  EXECUTE format('CREATE TABLE globalcart.%I (LIKE globalcart.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                 'INCLUDING GENERATED INCLUDING COMMENTS)%s', p_table || '_default', p_table,
                 CASE WHEN p_table LIKE 'fact\_%' THEN ' WITH (fillfactor = 85)' ELSE '' END);
  EXECUTE format('ALTER TABLE globalcart.%I ATTACH PARTITION globalcart.%I DEFAULT', p_table, p_table || '_default');
  EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', p_table || '_default',
                 format('Default partition of %s: rows of a month that has no partition yet.', p_table));

  -- its rows, in the partitions of their months
  EXECUTE format('SELECT array_agg(DISTINCT date_trunc(''month'', r.%I AT TIME ZONE ''UTC'')::date) FROM (%s) AS r',
                 p_column, p_rows) INTO v_months;
  PERFORM pg_temp.gc_add_partitions(p_table, v_months || ARRAY[(now() AT TIME ZONE 'UTC')::date,
                                                             ((now() AT TIME ZONE 'UTC') + interval '1 month')::date]);
  SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO v_columns
    FROM pg_attribute a
   WHERE a.attrelid = format('globalcart.%I', p_table)::regclass AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attgenerated = '';
  EXECUTE format('INSERT INTO globalcart.%I (%s) SELECT %s FROM (%s) AS r', p_table, v_columns, v_columns, p_rows);

  EXECUTE format('ALTER TABLE globalcart.%I ADD PRIMARY KEY (%s)', p_table,
                 (SELECT string_agg(format('%I', k), ', ') FROM unnest(v_key || p_column) AS k));
  FOR v_index IN SELECT unnest(v_indexes) AS def LOOP
    EXECUTE v_index.def;  -- captured before the renames: the same name, now on the new table
  END LOOP;

  IF v_identity THEN  -- an identity column cannot be partitioned (PostgreSQL 15): a sequence default
    EXECUTE format('CREATE SEQUENCE globalcart.%I OWNED BY globalcart.%I.audit_id', p_table || '_id_seq', p_table);
    EXECUTE format('SELECT setval(''globalcart.%I'', coalesce((SELECT max(audit_id) FROM globalcart.%I), 0) + 1, false)',
                   p_table || '_id_seq', p_table);
    EXECUTE format('ALTER TABLE globalcart.%I ALTER COLUMN audit_id SET DEFAULT nextval(%L)', p_table,
                   'globalcart.' || p_table || '_id_seq');
  END IF;
  EXECUTE format('DROP TABLE globalcart.%I', v_old);
END;
$$;

-- Rows of the old tables: the children take their order's order_ts.
SELECT pg_temp.gc_partition('fact_orders', 'order_ts', 'SELECT * FROM globalcart.fact_orders_before_0006', false);
SELECT pg_temp.gc_partition(t.fact, 'order_ts',
                            format('SELECT c.*, o.order_ts FROM globalcart.%I c JOIN globalcart.fact_orders o USING (order_id)',
                                   t.fact || '_before_0006'), true)
  FROM unnest(ARRAY['fact_order_items', 'fact_payments', 'fact_shipments', 'fact_returns']) AS t(fact);
SELECT pg_temp.gc_partition('fact_funnel_events', 'event_ts', 'SELECT * FROM globalcart.fact_funnel_events_before_0006',
                            false);
-- the audit tables: those of the children take the order's order_ts too (NULL when it is gone)
SELECT pg_temp.gc_partition(
         t.audit, 'audited_at',
         CASE WHEN t.child
              THEN format('SELECT a.*, o.order_ts FROM globalcart.%I a LEFT JOIN globalcart.fact_orders o '
                          'ON o.order_id = a.order_id', t.audit || '_before_0006')
              ELSE format('SELECT * FROM globalcart.%I', t.audit || '_before_0006') END,
         t.child)
  FROM (SELECT c.relname::text AS audit,
               c.relname IN ('audit_fact_order_items', 'audit_fact_payments', 'audit_fact_shipments',
                             'audit_fact_returns') AS child
          FROM pg_class c
         WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'audit\_%'
         ORDER BY c.relname) AS t;

-- The registry's primary keys: the contract's columns, then the partition column.
UPDATE globalcart.etl_sources SET primary_key = primary_key || '{order_ts}'::text[]
 WHERE source_name IN ('orders', 'order_items', 'payments', 'shipments', 'returns');
UPDATE globalcart.etl_sources SET primary_key = primary_key || '{event_ts}'::text[] WHERE source_name = 'funnel_events';
COMMENT ON COLUMN globalcart.etl_sources.primary_key IS
  'Primary key of the fact or dimension: distribution column first, the contract''s key, then the partition column of a '
  'partitioned fact.';

INSERT INTO globalcart.etl_settings (name, value, description) VALUES
  ('fact_retention', 'none',
   'purge_history() drops the monthly partitions of the facts whose whole month is older than this (orders and their '
   'children by order_ts, funnel events by event_ts), and takes them out of the KPI summaries; ''none'' keeps them for '
   'ever. An interval or none.')
ON CONFLICT (name) DO NOTHING;
