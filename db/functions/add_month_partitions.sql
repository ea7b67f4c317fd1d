-- globalcart.add_month_partitions(table, months): makes sure the partitioned table
-- globalcart.<table> has a partition for each month (UTC) of the given timestamps, creating
-- the missing ones: globalcart.<table>_pYYYY_MM for [first of the month, first of the next). The
-- refresh calls it for the months of its batch before writing, so a row for a month that has no
-- partition yet never fails a call (a new partition rolls back with the call). Returns the
-- number of partitions created.
--
-- A partition is created as a table of its own, given the rows of its month that waited in the
-- default partition (<table>_default: written while the month had none), and then attached
-- (ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent, which BI readers do not conflict
-- with, and scans the default partition, normally empty; CREATE TABLE ... PARTITION OF would take
-- ACCESS EXCLUSIVE and wait for every reader). Facts' partitions leave room for
-- in-place updates (fillfactor 85); the audit triggers and indexes of the parent apply to it.
-- Table names come from the refresh (the registry and the catalog) and are quoted with %I.
CREATE OR REPLACE FUNCTION globalcart.add_month_partitions(p_table text, p_times timestamptz[])
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
-- Its DDL goes through EXECUTE:  @plpgsql_check_options: performance_warnings = false
DECLARE
  v_month date;
  v_name text;
  v_created integer := 0;
  v_key text;       -- the partition column
  v_columns text;   -- the columns that take values (not generated ones)
  v_default text := p_table || '_default';
  v_lower timestamptz;
  v_upper timestamptz;
BEGIN
  SELECT a.attname INTO STRICT v_key
    FROM pg_catalog.pg_partitioned_table p
    JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = format('globalcart.%I', p_table)::regclass;
  FOR v_month IN
    SELECT DISTINCT date_trunc('month', t AT TIME ZONE 'UTC')::date FROM unnest(p_times) AS t
     WHERE t IS NOT NULL AND isfinite(t)
  LOOP
    v_name := p_table || '_p' || to_char(v_month, 'YYYY_MM');
    CONTINUE WHEN to_regclass(format('globalcart.%I', v_name)) IS NOT NULL;
    EXECUTE format('CREATE TABLE globalcart.%I (LIKE globalcart.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING GENERATED INCLUDING COMMENTS)%s', v_name, p_table,
                   CASE WHEN p_table LIKE 'fact\_%' THEN ' WITH (fillfactor = 85)' ELSE '' END);
    v_lower := v_month::timestamp AT TIME ZONE 'UTC';
    v_upper := (v_month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    IF to_regclass(format('globalcart.%I', v_default)) IS NOT NULL THEN
      -- rows of that month written while it had no partition move from the default one to it
      SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO v_columns
        FROM pg_catalog.pg_attribute a
       WHERE a.attrelid = format('globalcart.%I', p_table)::regclass AND a.attnum > 0 AND NOT a.attisdropped
         AND a.attgenerated = '';
      EXECUTE format('WITH m AS (DELETE FROM globalcart.%1$I d WHERE d.%2$I >= $1 AND d.%2$I < $2 RETURNING d.*) '
                     'INSERT INTO globalcart.%3$I (%4$s) SELECT %4$s FROM m', v_default, v_key, v_name, v_columns)
        USING v_lower, v_upper;
    END IF;
    EXECUTE format('ALTER TABLE globalcart.%I ATTACH PARTITION globalcart.%I FOR VALUES FROM (%L) TO (%L)',
                   p_table, v_name, v_lower, v_upper);
    EXECUTE format('COMMENT ON TABLE globalcart.%I IS %L', v_name,
                   format('Partition of %s for %s (UTC).', p_table, to_char(v_month, 'YYYY-MM')));
    v_created := v_created + 1;
  END LOOP;
  RETURN v_created;
END;
$$;
COMMENT ON FUNCTION globalcart.add_month_partitions(text, timestamptz[]) IS
  'Creates the missing monthly (UTC) partitions of a partitioned table for the months of the given times; returns how many.';
