-- Run by `migrate` as the migrating superuser, after the migrations and before the routine files:
-- globalcart_owner (NOLOGIN) takes the schema and every object in it — tables, sequences, views,
-- functions and procedures — so that the refresh, a SECURITY DEFINER function, runs with the
-- rights of a role nobody logs in as, and the routine files are then applied as that role.
DO $$
DECLARE
  v_object record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'globalcart_owner') THEN
    RETURN;  -- before migration 0004
  END IF;
  EXECUTE 'ALTER SCHEMA globalcart OWNER TO globalcart_owner';
  FOR v_object IN
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind,
           c.oid::regclass::text AS name
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
       AND c.relowner <> 'globalcart_owner'::regrole
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d  -- a partition follows its parent
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO globalcart_owner', v_object.kind, v_object.name);
  END LOOP;
  FOR v_object IN
    SELECT c.oid::regclass::text AS name FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind = 'S'
       AND c.relowner <> 'globalcart_owner'::regrole
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d  -- an identity's sequence follows its table
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO globalcart_owner', v_object.name);
  END LOOP;
  FOR v_object IN
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind, p.oid::regprocedure::text AS name
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'globalcart'::regnamespace AND p.proowner <> 'globalcart_owner'::regrole
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO globalcart_owner', v_object.kind, v_object.name);
  END LOOP;
END;
$$;
