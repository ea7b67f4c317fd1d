-- The as-of functions (docs/contract.md §7), generated from the catalog: every table of the schema that
-- has an audit table globalcart.audit_<table> gets globalcart.<table>_as_of(at) from
-- globalcart.install_as_of(), regenerated on every migrate so that it stays in step with the
-- table's columns.
SELECT globalcart.install_as_of(t.relname)
  FROM pg_catalog.pg_class t
  JOIN pg_catalog.pg_class a ON a.relnamespace = t.relnamespace AND a.relname = 'audit_' || t.relname
 WHERE t.relnamespace = 'globalcart'::regnamespace AND t.relkind IN ('r', 'p') AND a.relkind IN ('r', 'p')
   AND NOT t.relispartition AND NOT a.relispartition
 ORDER BY t.relname;
