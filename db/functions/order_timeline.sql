-- globalcart.order_timeline(order_id): every version of one order and of its items, payments,
-- shipments and returns (docs/contract.md §7), oldest first: the current rows and the old versions the
-- audit tables hold — updated and deleted ones — with
--   table_name   the fact, e.g. fact_payments
--   key          the row's key, e.g. {"order_id": 4711, "payment_id": 9}
--   valid_from   when the version became the warehouse's: the end of the run that wrote it
--                (NULL: written before history was kept, or outside a run)
--   valid_to     when it stopped being: the end of the run that replaced or deleted it (the
--                change's audited_at outside a run); NULL for the current version
--   run_id       the run that wrote it (loaded_run_id)
--   ended        'updated', 'deleted', or NULL for the current version
--   version      the row, as jsonb (its columns, without loaded_run_id)
-- The tables are the order-grain ones of globalcart.etl_sources (orders and the sources that wait
-- for their order), each read by an index probe on order_id (the facts' primary keys and the
-- audit tables' lead with it): milliseconds whatever the size of the warehouse. A version written
-- and replaced within one run (an order delivered and turned RETURNED by the same refresh) is
-- listed, with valid_from = valid_to. Owner's rights: the versions hold personal data, so only
-- globalcart_auditor may call it (like the audit tables it reads).
CREATE OR REPLACE FUNCTION globalcart.order_timeline(order_id bigint)
  RETURNS TABLE (table_name text, key jsonb, valid_from timestamptz, valid_to timestamptz, run_id bigint,
                 ended text, version jsonb)
  LANGUAGE plpgsql STABLE
  SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
-- Its rows come from RETURN QUERY EXECUTE, which plpgsql_check cannot see into:
-- @plpgsql_check_options: extra_warnings = false
DECLARE
  v_sql text;
BEGIN
  SELECT string_agg(format($sql$
      SELECT %1$L::text AS table_name, %3$s AS key, s.loaded_run_id, s.audit_run_id, s.audited_at, s.audit_action,
             %4$s AS table_rank, s.seq,
             s.row - %5$L::text[] AS version
        FROM (SELECT t.loaded_run_id, NULL::bigint AS audit_run_id, NULL::timestamptz AS audited_at,
                     NULL::text AS audit_action, NULL::bigint AS seq, to_jsonb(t) AS row
                FROM globalcart.%1$I t WHERE t.order_id = $1
              UNION ALL
              SELECT a.loaded_run_id, a.audit_run_id, a.audited_at, a.audit_action, a.audit_id, to_jsonb(a)
                FROM globalcart.%2$I a WHERE a.order_id = $1) AS s
      $sql$, e.fact_table, 'audit_' || e.fact_table,
      (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, s.row -> %L', c, c), ', ' ORDER BY n))
         FROM unnest(e.primary_key) WITH ORDINALITY AS k(c, n) WHERE c <> 'order_ts'),
      e.apply_order,
      -- what is not a column of the version: loaded_run_id (the run_id column) and the audit's own
      (SELECT array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = format('globalcart.%I', 'audit_' || e.fact_table)::regclass AND a.attnum > 0
          AND NOT a.attisdropped
          AND (a.attname = 'loaded_run_id'
               OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute f
                               WHERE f.attrelid = format('globalcart.%I', e.fact_table)::regclass
                                 AND f.attname = a.attname AND NOT f.attisdropped)))),
      ' UNION ALL ' ORDER BY e.apply_order)
    INTO v_sql
    FROM globalcart.etl_sources e
   WHERE e.source_name = 'orders' OR e.waits_for_order;

  RETURN QUERY EXECUTE format($sql$
    SELECT v.table_name, v.key, w.finished_at AS valid_from,
           CASE WHEN v.audit_action IS NULL THEN NULL ELSE coalesce(r.finished_at, v.audited_at) END AS valid_to,
           v.loaded_run_id,
           CASE v.audit_action WHEN 'UPDATE' THEN 'updated' WHEN 'DELETE' THEN 'deleted' END, v.version
      FROM (%s) AS v
      LEFT JOIN globalcart.etl_runs w ON w.run_id = v.loaded_run_id
      LEFT JOIN globalcart.etl_runs r ON r.run_id = v.audit_run_id
     ORDER BY w.finished_at NULLS FIRST, v.table_rank, v.seq NULLS LAST
    $sql$, v_sql) USING order_timeline.order_id;
END;
$$;
COMMENT ON FUNCTION globalcart.order_timeline(bigint) IS
  'Every version of an order and of its items, payments, shipments and returns, oldest first, with valid_from/valid_to (warehouse time), the run that wrote it and the version as jsonb.';
