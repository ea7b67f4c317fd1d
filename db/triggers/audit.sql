-- The audit triggers (docs/contract.md §2.4), generated from the catalog: every table of the schema
-- that has an audit table globalcart.audit_<table> gets its BEFORE UPDATE trigger from
-- globalcart.install_audit_trigger(), regenerated on every migrate so that it stays in step
-- with the table's columns. The generated trigger functions name everything schema-qualified and
-- pin no search_path: a SET clause would cost a configuration change on every audited row.
SELECT globalcart.install_audit_trigger(t.relname)
  FROM pg_catalog.pg_class t
  JOIN pg_catalog.pg_class a ON a.relnamespace = t.relnamespace AND a.relname = 'audit_' || t.relname
 WHERE t.relnamespace = 'globalcart'::regnamespace AND t.relkind IN ('r', 'p') AND a.relkind IN ('r', 'p')
   AND NOT t.relispartition AND NOT a.relispartition  -- a partition has its parent's trigger
 ORDER BY t.relname;
