-- globalcart.install_audit_trigger(table): the audit of one table (docs/contract.md §2.4 and 7). Before a
-- dimension or fact row is overwritten, a row-level BEFORE UPDATE trigger copies the old
-- version into globalcart.audit_<table>, stamped with the refresh's run id
-- (globalcart.current_run_id(), NULL outside a refresh), and stamps the new version's
-- loaded_run_id with it. Inserts and stale replays (the guarded upsert updates nothing) write no
-- audit row. A statement-level AFTER DELETE trigger copies every deleted row into the audit table
-- as well (audit_action 'DELETE'), from the statement's transition table: one INSERT per
-- statement, so that nothing a revert removes is lost. (An UPDATE that moves a row to another
-- partition is audited once, as an update: the DELETE trigger fires only for DELETE statements.)
-- db/triggers/audit.sql calls it for every table that has an audit table.
--
-- It writes, for one table, plain static trigger functions globalcart.audit_<table>_before_update()
-- and globalcart.audit_<table>_after_delete() whose column lists are read from the catalog, and
-- attaches them as triggers "audit_before_update" and "audit_after_delete". Static SQL keeps the
-- per-row cost to one cached INSERT; regenerating on every migrate keeps it in step with the table.
-- The generated trigger functions name everything schema-qualified; the row-level one carries no
-- SET search_path clause: it would cost a configuration change on every audited row (the
-- statement-level one, run once a statement, pins it).
--
-- On Citus (`globalcart distribute`), the triggers fire on the shards. A fact's audit table is
-- colocated with it, so each shard writes the audit shard beside it. A dimension is a reference
-- table, a copy on every node, while its audit table stays on the coordinator (it is partitioned by
-- month, which a reference table cannot be): for such a table the generated functions audit on the
-- coordinator's copy only, and on the workers' copies just stamp loaded_run_id. A distributed
-- table's deletes are audited by a row-level trigger (a shard's statement-level trigger cannot pass
-- its transition table to a distributed INSERT); since a row trigger also fires for the DELETE
-- half of an UPDATE that moves a row to another partition, it writes its row only when the key is
-- gone from the table's shard (a moved row is there again, and audited once, as an update).
-- distribute runs this again for every table it lays out.

CREATE OR REPLACE FUNCTION globalcart.install_audit_trigger(p_table text)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_table regclass := format('globalcart.%I', p_table)::regclass;
  v_audit regclass := format('globalcart.%I', 'audit_' || p_table)::regclass;
  v_function text := 'audit_' || p_table || '_before_update';
  v_delete_function text := 'audit_' || p_table || '_after_delete';
  v_columns text;
  v_old_values text;
  v_gone_values text;
  v_stamp text := '';  -- sets NEW.loaded_run_id, where the table has one
  v_local_audit boolean := false;  -- Citus: a reference table whose audit table is local to the coordinator
  v_sharded boolean := false;      -- Citus: a distributed table (its audit colocated with it)
  v_guard text := '';
  v_delete_guard text := '';
  v_key_match text;  -- x.<col> = $1.<col> AND … over the key without the partition column
BEGIN
  IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
    -- Citus: its catalog, named through format() (it exists only there; a constant query string
    -- would be checked against a server without it)
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %1$s p WHERE p.logicalrelid = $1 AND p.partmethod = ''n'')
                      AND NOT EXISTS (SELECT 1 FROM %1$s p WHERE p.logicalrelid = $2),
                    EXISTS (SELECT 1 FROM %1$s p WHERE p.logicalrelid = $1 AND p.partmethod = ''h'')',
                   'pg_catalog.pg_dist_partition')
      INTO v_local_audit, v_sharded USING v_table, v_audit;
  END IF;
  SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
         string_agg(format('OLD.%I', a.attname), ', ' ORDER BY a.attnum),
         string_agg(format('g.%I', a.attname), ', ' ORDER BY a.attnum),
         coalesce(max('NEW.loaded_run_id := v_run_id;') FILTER (WHERE a.attname = 'loaded_run_id'), '')
    INTO v_columns, v_old_values, v_gone_values, v_stamp
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = v_table AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_local_audit THEN  -- on a worker's copy (a shard, not the coordinator's): no audit row here
    v_guard := format($g$
      IF TG_TABLE_NAME <> %1$L AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_local_group l WHERE l.groupid = 0) THEN
        %2$s
        RETURN NEW;
      END IF;$g$, p_table, v_stamp);
    v_delete_guard := format($g$
        IF TG_TABLE_NAME <> %1$L AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_local_group l WHERE l.groupid = 0) THEN
          RETURN NULL;
        END IF;$g$, p_table);
  END IF;

  EXECUTE format($fn$
    CREATE OR REPLACE FUNCTION globalcart.%1$I()
      RETURNS trigger
      LANGUAGE plpgsql
    AS $body$
    DECLARE
      v_run_id bigint := globalcart.current_run_id();
    BEGIN%6$s
      INSERT INTO %2$s (audit_run_id, %3$s) VALUES (v_run_id, %4$s);
      %5$s
      RETURN NEW;
    END;
    $body$ $fn$, v_function, v_audit, v_columns, v_old_values, v_stamp, v_guard);
  EXECUTE format('COMMENT ON FUNCTION globalcart.%I() IS %L', v_function,
                 format('Copies the old version of a %s row into %s before it is updated (generated by install_audit_trigger).',
                        v_table, v_audit));
  EXECUTE format('CREATE OR REPLACE TRIGGER audit_before_update BEFORE UPDATE ON %s '
                 'FOR EACH ROW EXECUTE FUNCTION globalcart.%I()', v_table, v_function);

  IF v_stamp <> '' AND v_sharded THEN
    -- (Citus, a distributed table: a shard's statement trigger cannot hand its transition table to the
    -- INSERT into the audit table, planned as a distributed statement; a row trigger's INSERT of one
    -- row goes to the colocated audit shard beside it. It fires on a partition of the shard, after
    -- the statement: when the key is in the shard's parent table then, the row was moved, not deleted.)
    SELECT string_agg(format('x.%1$I = $1.%1$I', a.attname), ' AND ' ORDER BY k.n) INTO v_key_match
      FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      LEFT JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = i.indrelid
     WHERE i.indrelid = v_table AND i.indisprimary AND NOT k.attnum = ANY (coalesce(p.partattrs::int2[], '{}'));
    EXECUTE format($fn$
      CREATE OR REPLACE FUNCTION globalcart.%1$I()
        RETURNS trigger
        LANGUAGE plpgsql
      AS $body$
      DECLARE
        v_shard regclass := coalesce((SELECT i.inhparent::regclass FROM pg_catalog.pg_inherits i
                                       WHERE i.inhrelid = TG_RELID), TG_RELID::regclass);
        v_moved boolean;
      BEGIN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %%s x WHERE %5$s)', v_shard) INTO v_moved USING OLD;
        IF NOT v_moved THEN
          INSERT INTO %2$s (audit_run_id, audit_action, %3$s) VALUES (globalcart.current_run_id(), 'DELETE', %4$s);
        END IF;
        RETURN NULL;
      END;
      $body$ $fn$, v_delete_function, v_audit, v_columns, v_old_values, replace(v_key_match, '''', ''''''));
    EXECUTE format('DROP TRIGGER IF EXISTS audit_after_delete ON %s', v_table);
    EXECUTE format('CREATE TRIGGER audit_after_delete AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION globalcart.%I()',
                   v_table, v_delete_function);
  ELSIF v_stamp <> '' THEN  -- (a table with history: deletes are audited too)
    EXECUTE format($fn$
      CREATE OR REPLACE FUNCTION globalcart.%1$I()
        RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
      AS $body$
      -- @plpgsql_check_options: oldtable = gone
      BEGIN%5$s
        INSERT INTO %2$s (audit_run_id, audit_action, %3$s)
        SELECT globalcart.current_run_id(), 'DELETE', %4$s FROM gone AS g;
        RETURN NULL;
      END;
      $body$ $fn$, v_delete_function, v_audit, v_columns, v_gone_values, v_delete_guard);
    EXECUTE format('CREATE OR REPLACE TRIGGER audit_after_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS gone '
                   'FOR EACH STATEMENT EXECUTE FUNCTION globalcart.%I()', v_table, v_delete_function);
  END IF;
  IF v_stamp <> '' THEN
    EXECUTE format('COMMENT ON FUNCTION globalcart.%I() IS %L', v_delete_function,
                   format('Copies the rows a DELETE statement removes from %s into %s (generated by install_audit_trigger).',
                          v_table, v_audit));
  END IF;
  EXECUTE format('COMMENT ON TABLE %s IS %L', v_audit,
                 format('Old versions of %s rows, copied by a BEFORE UPDATE trigger before each update (and, with '
                        'audit_action DELETE, each deleted row); audit_run_id is the etl_runs row of the run that made '
                        'the change (NULL outside a run), loaded_run_id the one that had written the version.', v_table));
END;
$$;
COMMENT ON FUNCTION globalcart.install_audit_trigger(text) IS
  'Creates globalcart.audit_<table>_before_update() and _after_delete() and their triggers on globalcart.<table>.';
