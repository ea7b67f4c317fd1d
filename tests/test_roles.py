"""docs/contract.md §6, table-driven: for each group role, a login member tries every action of the
"may" and "may not" columns and gets exactly the contract's answer; PUBLIC has nothing; an outsider
cannot make a refresh skip, wait or fail; the refresh works for a plain refresher member and its
audit rows say who called it."""

from collections.abc import Callable, Iterator

import psycopg
import pytest
from helpers import customer, fetch, order, refresh, scalar, stage

GROUPS = ("loader", "refresher", "reader", "auditor")
MEMBERS = {group: f"gc_member_{group}" for group in GROUPS} | {"outsider": "gc_member_outsider"}
READERS = {"reader", "auditor"}


def _insert_order(conn: psycopg.Connection, extra: str = "") -> None:
    conn.execute(
        "INSERT INTO globalcart.stg_orders (order_id, customer_id, order_ts, order_status, channel, country_code, "
        f"currency, gross_amount, discount_amount, shipping_amount, net_amount, updated_at{extra}) VALUES (50, 1, "
        f"now(), 'PLACED', 'web', 'US', 'USD', 1, 0, 0, 1, now() - interval '1 hour'{', now()' if extra else ''})"
    )


# action: (what it does, the roles that may do it — docs/contract.md §6)
ACTIONS: dict[str, tuple[Callable[[psycopg.Connection], object], set[str]]] = {
    "INSERT the business columns of staging": (_insert_order, {"loader"}),
    "COPY the business columns into staging": (lambda c: stage(c, "orders", [order(51)]), {"loader"}),
    "name a bookkeeping column (ingested_at)": (lambda c: _insert_order(c, ", ingested_at"), set()),
    "read staging": (lambda c: c.execute("SELECT * FROM globalcart.stg_orders"), set()),
    "read etl_watermarks": (lambda c: c.execute("SELECT * FROM globalcart.etl_watermarks"), {"loader"}),
    "read facts": (lambda c: c.execute("SELECT * FROM globalcart.fact_orders"), READERS),
    "read dimensions": (lambda c: c.execute("SELECT * FROM globalcart.dim_customer, globalcart.dim_currency"), READERS),
    "read kpi_snapshots": (lambda c: c.execute("SELECT * FROM globalcart.kpi_snapshots"), READERS),
    "kpi_values()": (lambda c: c.execute("SELECT * FROM globalcart.kpi_values()"), READERS),
    "compare_kpis()": (lambda c: c.execute("SELECT * FROM globalcart.compare_kpis('b', 'a')"), READERS),
    "explain_kpis() of snapshots": (lambda c: c.execute("SELECT * FROM globalcart.explain_kpis('b', 'a')"), READERS),
    "explain_kpis() of a run": (
        lambda c: c.execute("SELECT * FROM globalcart.explain_kpis((SELECT max(run_id) FROM globalcart.kpi_run_sums))"),
        READERS),
    "write the attribution": (lambda c: c.execute("DELETE FROM globalcart.kpi_attribution"), set()),
    "the dashboard's reads": (lambda c: c.execute("SELECT globalcart.dashboard_run(1), globalcart.dashboard_runs(5), "
                                                  "globalcart.dashboard_follow_loop()"), READERS),
    "read pipeline_health": (lambda c: c.execute("SELECT * FROM globalcart.pipeline_health"), {"refresher"} | READERS),
    "read audit tables": (lambda c: c.execute("SELECT * FROM globalcart.audit_fact_orders"), {"auditor"}),
    "kpi_values_as_of()": (lambda c: c.execute("SELECT * FROM globalcart.kpi_values_as_of(now())"), READERS),
    "<table>_as_of() (history holds personal data)": (
        lambda c: c.execute("SELECT * FROM globalcart.fact_orders_as_of(now()), globalcart.dim_customer_as_of(now())"),
        {"auditor"}),
    "order_timeline()": (lambda c: c.execute("SELECT * FROM globalcart.order_timeline(1)"), {"auditor"}),
    "revert_run()": (lambda c: c.execute("SELECT globalcart.revert_run(1)"), set()),
    "read etl_rejects": (lambda c: c.execute("SELECT * FROM globalcart.etl_rejects"), {"auditor"}),
    "read settings": (lambda c: c.execute("SELECT * FROM globalcart.etl_settings"), set()),
    "read etl_runs": (lambda c: c.execute("SELECT * FROM globalcart.etl_runs"), set()),
    "write facts": (lambda c: c.execute("UPDATE globalcart.fact_orders SET order_status = 'PAID'"), set()),
    "write dimensions": (lambda c: c.execute("DELETE FROM globalcart.dim_customer"), set()),
    "write settings": (lambda c: c.execute("UPDATE globalcart.etl_settings SET value = '1'"), set()),
    "write staging rows": (lambda c: c.execute("DELETE FROM globalcart.stg_orders"), set()),
    "run_incremental_refresh()": (lambda c: refresh(c), {"refresher"}),
    "drain_staging()": (lambda c: c.execute("CALL globalcart.drain_staging()"), {"refresher"}),
    "refresh_for()": (lambda c: c.execute("CALL globalcart.refresh_for('0 seconds', '0.1 seconds')"), {"refresher"}),
    "snapshot_kpis()": (lambda c: c.execute("SELECT globalcart.snapshot_kpis('x')"), {"refresher"}),
    "purge_history()": (lambda c: c.execute("SELECT globalcart.purge_history()"), {"refresher"}),
    "lock the refresh's lock": (lambda c: _in_transaction(c, "LOCK TABLE globalcart.etl_refresh_lock"), set()),
    "call a refresh step directly": (
        lambda c: c.execute("SELECT globalcart.run_source_step('orders', 0, now(), now(), now())"), set()),
    "schedule the refresh": (lambda c: c.execute("SELECT globalcart.schedule_incremental_refresh()"), set()),
}  # fmt: skip


def _in_transaction(conn: psycopg.Connection, sql: str) -> None:
    with conn.transaction():
        conn.execute(sql)


@pytest.fixture(scope="session")
def members(pg_server) -> Iterator[dict[str, str]]:
    """A login member of each group role (roles are the server's), and one of none."""
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        for group, user in MEMBERS.items():
            admin.execute(f"DROP ROLE IF EXISTS {user}")
            admin.execute(f"CREATE ROLE {user} LOGIN")
            if group != "outsider":
                admin.execute(f"GRANT globalcart_{group} TO {user}")
    yield MEMBERS
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        for user in MEMBERS.values():
            admin.execute(f"DROP ROLE IF EXISTS {user}")


def _as(dsn: str, user: str) -> psycopg.Connection:
    return psycopg.connect(dsn.replace("postgresql://postgres@", f"postgresql://{user}@"), autocommit=True)


@pytest.mark.parametrize("group", [*GROUPS, "outsider"])
def test_each_role_may_do_exactly_what_the_contract_says(dsn, members, group):
    with psycopg.connect(dsn, autocommit=True) as admin:
        stage(admin, "customers", [customer(1)])
        stage(admin, "orders", [order(1)])
        refresh(admin)
        admin.execute("SELECT globalcart.snapshot_kpis('b'), globalcart.snapshot_kpis('a')")
    wrong = []
    with _as(dsn, members[group]) as conn:
        for action, (run, allowed) in ACTIONS.items():
            try:
                run(conn)
                if group not in allowed:
                    wrong.append(f"{action}: allowed, the contract says no")
            except psycopg.errors.InsufficientPrivilege:
                if group in allowed:
                    wrong.append(f"{action}: refused, the contract says yes")
            except psycopg.Error as exc:  # refused for another reason: the test itself is wrong
                wrong.append(f"{action}: {type(exc).__name__}: {exc}")
    assert wrong == [], f"{group}:\n" + "\n".join(wrong)


def test_public_has_nothing(conn):
    public_functions = fetch(
        conn,
        """SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'globalcart'::regnamespace
             AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))""",
    )
    assert public_functions == []  # NULL would mean PostgreSQL's default: EXECUTE for PUBLIC
    assert (
        fetch(
            conn,
            """SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'globalcart'::regnamespace
           AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)""",
        )
        == []
    )
    assert not scalar(
        conn,
        "SELECT EXISTS (SELECT 1 FROM aclexplode((SELECT nspacl FROM pg_namespace WHERE nspname = 'globalcart')) a "
        "WHERE a.grantee = 0)",
    )


def test_a_routine_added_later_by_the_owner_gets_no_public_execute(conn):
    conn.execute("SET ROLE globalcart_owner")
    conn.execute("CREATE FUNCTION globalcart.added_later() RETURNS int LANGUAGE sql RETURN 1")
    conn.execute("RESET ROLE")
    assert scalar(
        conn,
        "SELECT proacl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM aclexplode(proacl) a WHERE a.grantee = 0) "
        "FROM pg_proc WHERE proname = 'added_later'",
    )  # a NULL proacl, or a PUBLIC (grantee 0) entry, would be EXECUTE for PUBLIC


def test_an_outsider_holding_every_advisory_lock_cannot_make_a_refresh_skip_or_wait(dsn, members):
    with psycopg.connect(dsn, autocommit=True) as admin:
        stage(admin, "orders", [order(1)])
    with _as(dsn, members["outsider"]) as outsider:
        outsider.execute("SELECT pg_advisory_lock(k) FROM generate_series(360000, 361000) k")
        outsider.execute("SELECT pg_advisory_lock(k, k) FROM generate_series(0, 100) k")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), outsider.transaction():
            outsider.execute("LOCK TABLE globalcart.etl_refresh_lock")
        with _as(dsn, members["refresher"]) as refresher:
            refresher.execute("SET statement_timeout = '5s'")
            summary = refresh(refresher)
        assert summary["status"] == "ok" and summary["orders"]["inserted"] == 1


def test_a_plain_refresher_runs_the_refresh_and_the_audit_says_who(dsn, members):
    with _as(dsn, members["loader"]) as loader:
        stage(loader, "orders", [order(1)])
    with _as(dsn, members["refresher"]) as refresher:
        assert refresh(refresher)["orders"]["inserted"] == 1
    with _as(dsn, members["loader"]) as loader:
        stage(loader, "orders", [order(1, order_status="PAID", updated_at="2026-01-02 00:00+00")])
    with _as(dsn, members["refresher"]) as refresher:
        assert refresh(refresher)["orders"]["updated"] == 1
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert fetch(admin, "SELECT audited_by, order_status FROM globalcart.audit_fact_orders") == [
            (members["refresher"], "PLACED")
        ]
        assert fetch(admin, "SELECT order_status FROM globalcart.fact_orders") == [("PAID",)]


def test_a_second_warehouse_on_the_same_server_gets_the_same_roles(empty_dsn):
    from driver.core.migrate import migrate

    with psycopg.connect(empty_dsn) as conn:
        migrate(conn, with_cron=False)  # the roles exist already (the template's migrate made them)
        conn.commit()
        assert scalar(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'globalcart'") == (
            "globalcart_owner"
        )
        assert scalar(conn, "SELECT has_table_privilege('globalcart_reader', 'globalcart.fact_orders', 'SELECT')")


def test_the_refresh_works_where_public_lost_the_temporary_privilege(dsn, members):
    """Hardened servers revoke TEMPORARY from PUBLIC; the refresh's work tables are the owner's."""
    from driver.core.migrate import migrate

    database = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC")
        stage(admin, "orders", [order(1)])
    with psycopg.connect(dsn) as conn:  # this database is a clone: its own grants come with its migrate
        migrate(conn, with_cron=False)
    with _as(dsn, members["refresher"]) as refresher:
        assert refresh(refresher)["orders"]["inserted"] == 1
