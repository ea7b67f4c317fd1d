-- 0004_roles: least privilege (docs/contract.md §6). The group roles, created when missing (roles
-- belong to the whole server: a second warehouse database on it shares them), the owner of every
-- object of the schema, the login role the pg_cron jobs run as, the lock only refreshers can take,
-- and who changed what in the audit tables. What each role may do is granted by
-- db/privileges/grants.sql, generated from the catalog and the source registry on every migrate.
DO $$
DECLARE
  v_role text;
BEGIN
  FOREACH v_role IN ARRAY ARRAY['globalcart_owner', 'globalcart_loader', 'globalcart_refresher',
                                'globalcart_reader', 'globalcart_auditor']
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_role) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    END IF;
  END LOOP;
  -- pg_cron runs the scheduled jobs as this login role: a refresher, not a superuser
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'globalcart_cron') THEN
    CREATE ROLE globalcart_cron LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
  END IF;
END;
$$;
COMMENT ON ROLE globalcart_owner IS
  'GlobalCart 360: owns the globalcart schemas and their objects; the refresh runs with its rights (SECURITY DEFINER). NOLOGIN.';
COMMENT ON ROLE globalcart_loader IS
  'GlobalCart 360 producers: INSERT/COPY the business columns of globalcart.stg_*, read etl_watermarks.';
COMMENT ON ROLE globalcart_refresher IS
  'GlobalCart 360: run the refresh, drain_staging, refresh_for, snapshot_kpis, purge_history; read pipeline_health.';
COMMENT ON ROLE globalcart_reader IS
  'GlobalCart 360 BI: read dimensions, facts, KPI snapshots, pipeline_health and the KPI functions; no staging, audit or rejects.';
COMMENT ON ROLE globalcart_auditor IS
  'GlobalCart 360: everything globalcart_reader may, plus the audit tables and etl_rejects (they hold personal data).';
COMMENT ON ROLE globalcart_cron IS
  'GlobalCart 360: the login role pg_cron runs the scheduled jobs as; a member of globalcart_refresher.';

GRANT globalcart_reader TO globalcart_auditor;
GRANT globalcart_refresher TO globalcart_cron;

-- One refresh at a time: a call takes this table's lock (EXCLUSIVE, NOWAIT) with the owner's
-- rights. Nobody else has any privilege on it, so no other session can take or hold it — unlike an
-- advisory lock key, which any connected role can take.
CREATE TABLE globalcart.etl_refresh_lock (
  one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row)
);
COMMENT ON TABLE globalcart.etl_refresh_lock IS
  'Locked (EXCLUSIVE) by the refresh that is running; a call that finds it locked returns skipped. No role but the owner may lock it.';

-- The follow loop (refresh_for) that is running, if any: its backend, since when, and when it
-- last made a call (its heartbeat).
CREATE TABLE globalcart.etl_follow_loop (
  one_row    boolean PRIMARY KEY DEFAULT true CHECK (one_row),
  pid        integer,
  started_at timestamptz,
  beat_at    timestamptz
);
INSERT INTO globalcart.etl_follow_loop (one_row) VALUES (true);
COMMENT ON TABLE globalcart.etl_follow_loop IS
  'The backend running globalcart.refresh_for() (NULL: none); a second loop stops at once while that backend is alive and beats.';

-- Who changed what: the session user that called the refresh (or changed a row by hand). Rows
-- audited before this migration keep NULL: who wrote them was not recorded.
DO $$
DECLARE
  v_table text;
BEGIN
  FOR v_table IN
    SELECT c.relname FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'globalcart'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname LIKE 'audit\_%'
  LOOP
    EXECUTE format('ALTER TABLE globalcart.%I ADD COLUMN audited_by text', v_table);
    EXECUTE format('ALTER TABLE globalcart.%I ALTER COLUMN audited_by SET DEFAULT session_user', v_table);
    EXECUTE format('COMMENT ON COLUMN globalcart.%I.audited_by IS %L', v_table,
                   'The session user whose statement overwrote the row (who called the refresh, or who updated by hand).');
  END LOOP;
END;
$$;
