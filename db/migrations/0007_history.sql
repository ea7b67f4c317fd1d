-- 0007_history: what the warehouse held at any time, and which run wrote it (docs/contract.md §7).
--   - Every fact and dimension (each table with an audit table) gains loaded_run_id: the run that
--     wrote its current version. Its default is the run id the refresh publishes
--     (globalcart.current_run_id(), NULL outside a refresh); the audit trigger sets it on update.
--   - Each audit table gains loaded_run_id (kept with the old version, as every column is) and
--     audit_action: 'UPDATE' for a version that was overwritten, 'DELETE' for one that was deleted
--     (deletes are audited from now on, so that nothing a revert removes is lost).
--   - Indexes for history reads: each audit table by its row's key (an order's, a customer's
--     versions are an index probe) and a BRIN index by audit_run_id (audit rows are appended in
--     run order: a revert finds what a run replaced without reading the whole table).
--   - etl_runs.reverts_run_id: the run a revert run undid.
-- A warehouse upgraded with history already in its audit tables gets loaded_run_id where the audit
-- tells it: a version that replaced another was written by the run that replaced it. Rows that
-- were never updated keep NULL (written before history was kept).

ALTER TABLE globalcart.etl_runs ADD COLUMN reverts_run_id bigint REFERENCES globalcart.etl_runs (run_id);
COMMENT ON COLUMN globalcart.etl_runs.reverts_run_id IS
  'For a run made by globalcart.revert_run(): the run it undid.';

DO $$
DECLARE
  t record;
  v_key text;        -- the row's key: primary key columns but the partition column, e.g. order_id, payment_id
  v_key_join text;   -- x.k = y.k AND …
  v_audit_key text;  -- the audit table's primary key columns
BEGIN
  FOR t IN
    SELECT c.relname AS name, a.relname AS audit, c.oid AS table_oid, a.oid AS audit_oid
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_class a ON a.relnamespace = c.relnamespace AND a.relname = 'audit_' || c.relname
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p') AND a.relkind IN ('r', 'p')
       AND NOT c.relispartition AND NOT a.relispartition
     ORDER BY c.relname
  LOOP
    SELECT string_agg(quote_ident(att.attname), ', ' ORDER BY k.n),
           string_agg(format('x.%1$I = y.%1$I', att.attname), ' AND ' ORDER BY k.n)
      INTO v_key, v_key_join
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
      JOIN pg_catalog.pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
     WHERE i.indrelid = t.table_oid AND i.indisprimary
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partitioned_table p
                        WHERE p.partrelid = t.table_oid AND k.attnum = ANY (p.partattrs::int2[]));
    SELECT string_agg(quote_ident(att.attname), ', ' ORDER BY k.n) INTO v_audit_key
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
      JOIN pg_catalog.pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
     WHERE i.indrelid = t.audit_oid AND i.indisprimary;

    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN loaded_run_id bigint '
                   'DEFAULT nullif(pg_catalog.current_setting(''globalcart.run_id'', true), '''')::bigint', t.name);
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.loaded_run_id IS %L', t.name,
                   'The etl_runs row of the run that wrote this version (NULL: written outside a run).');
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN loaded_run_id bigint, '
                   'ADD COLUMN audit_action text NOT NULL DEFAULT ''UPDATE'' CHECK (audit_action IN (''UPDATE'', ''DELETE''))',
                   t.audit);
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.audit_action IS %L', t.audit,
                   'UPDATE: this version was overwritten; DELETE: it was deleted (by audit_run_id).');

    -- the key's versions: the primary key leads with it for the order-grain facts and the funnel
    IF split_part(v_audit_key, ',', 1) <> split_part(v_key, ',', 1) THEN
      EXECUTE format('CREATE INDEX %I ON globalcart.%I (%s)', t.audit || '_key_idx', t.audit, v_key);
    END IF;
    EXECUTE format('CREATE INDEX %I ON globalcart.%I USING brin (audit_run_id)', t.audit || '_run_brin', t.audit);

    -- history already audited: the audit trigger must not audit this backfill (migrate installs
    -- it again after the migrations)
    EXECUTE format('DROP TRIGGER IF EXISTS audit_before_update ON globalcart.%I', t.name);
    EXECUTE format($sql$
      UPDATE globalcart.%1$I y SET loaded_run_id = x.previous_run
        FROM (SELECT a.audit_id, a.audited_at,
                     lag(a.audit_run_id) OVER (PARTITION BY %2$s ORDER BY a.audit_id) AS previous_run
                FROM globalcart.%1$I a) AS x
       WHERE y.audit_id = x.audit_id AND y.audited_at = x.audited_at AND x.previous_run IS NOT NULL
      $sql$, t.audit, v_key);
    EXECUTE format($sql$
      UPDATE globalcart.%1$I y SET loaded_run_id = x.last_run
        FROM (SELECT DISTINCT ON (%3$s) %3$s, a.audit_run_id AS last_run
                FROM globalcart.%2$I a ORDER BY %3$s, a.audit_id DESC) AS x
       WHERE %4$s AND x.last_run IS NOT NULL
      $sql$, t.name, t.audit, v_key, v_key_join);
  END LOOP;
END;
$$;
CREATE INDEX etl_runs_finished_at_idx ON globalcart.etl_runs (finished_at);
