-- globalcart.add_audit_partitions(now): the partitions of every audit table (they are partitioned
-- by audited_at, which is the time of the transaction that changes a row) for the month of now
-- and the next one, so that an audited update never lacks its partition: the refresh calls it at
-- each call that does work, globalcart.purge_history() every day. The audit tables are found in
-- the catalog (globalcart.audit_<table>, partitioned). Returns the number of partitions created.
CREATE OR REPLACE FUNCTION globalcart.add_audit_partitions(p_now timestamptz)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_created integer := 0;
  v_table text;
BEGIN
  FOR v_table IN
    SELECT c.relname::text FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'p' AND c.relname LIKE 'audit\_%'
     ORDER BY c.relname
  LOOP
    v_created := v_created + globalcart.add_month_partitions(v_table, ARRAY[p_now, p_now + interval '1 month']);
  END LOOP;
  RETURN v_created;
END;
$$;
COMMENT ON FUNCTION globalcart.add_audit_partitions(timestamptz) IS
  'Creates the partitions of every audit table for this month and the next, where missing.';
