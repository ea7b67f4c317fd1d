-- globalcart.check_job_user(run_as): raises GC009, saying what to do, unless run_as can run the
-- scheduled jobs (docs/contract.md §6): a login role that is not a superuser and is a member of
-- globalcart_refresher (migrate creates globalcart_cron for this). pg_cron connects as it, so
-- pg_hba.conf must let it in (see docs/operations.md, "Roles and access").
CREATE OR REPLACE FUNCTION globalcart.check_job_user(run_as name)
  RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role pg_catalog.pg_roles;
BEGIN
  SELECT * INTO v_role FROM pg_catalog.pg_roles r WHERE r.rolname = check_job_user.run_as;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the role % does not exist', quote_ident(run_as)
      USING ERRCODE = 'GC009', HINT = 'Run migrate (it creates globalcart_cron), or name an existing login role.';
  ELSIF v_role.rolsuper OR NOT v_role.rolcanlogin
        OR NOT pg_has_role(v_role.oid, 'globalcart_refresher'::regrole, 'MEMBER') THEN
    RAISE EXCEPTION 'the scheduled jobs must run as a login role that is a member of globalcart_refresher and not a superuser: % is not',
                    quote_ident(run_as)
      USING ERRCODE = 'GC009',
            HINT = format('GRANT globalcart_refresher TO %I; (and LOGIN NOSUPERUSER), or schedule as globalcart_cron.', run_as);
  END IF;
END;
$$;
COMMENT ON FUNCTION globalcart.check_job_user(name) IS
  'Raises GC009 unless the role can run the scheduled jobs: login, not a superuser, a member of globalcart_refresher.';
