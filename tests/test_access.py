"""`globalcart grant` / `revoke` (docs/contract.md §6: people and services get the group roles), and
the driver used by a service login that holds only the roles it needs."""

import psycopg
import pytest
from helpers import fetch, run_cli, scalar


@pytest.fixture
def cleanup_roles(pg_server):
    made: list[str] = []
    yield made
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        for role in made:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_grant_and_revoke_group_roles(dsn, pg_server, cleanup_roles):
    cleanup_roles.append("gc_alice")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE ROLE gc_alice LOGIN")
    result = run_cli("grant", "gc_alice", "--role", "reader", "--role", "loader", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gc_alice: member of globalcart_loader, globalcart_reader"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT pg_has_role('gc_alice', 'globalcart_reader', 'MEMBER')")
    result = run_cli("revoke", "gc_alice", "--role", "loader", dsn=dsn)
    assert result.returncode == 0 and result.stdout.strip() == "gc_alice: member of globalcart_reader"


def test_grant_creates_a_missing_login_with_a_hashed_password(dsn, pg_server, cleanup_roles):
    cleanup_roles.append("gc_service")
    result = run_cli("grant", "gc_service", "--role", "loader", "--password-env", "GC_TEST_PW", dsn=dsn,
                     env={"GC_TEST_PW": "s3cret-but-long-enough"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        [(can_login, password)] = fetch(
            conn, "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = 'gc_service'"
        )
    assert can_login and password.startswith("SCRAM-SHA-256$") and "s3cret" not in password


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["grant", "gc_nobody", "--role", "reader"], {}, "there is no role 'gc_nobody'"),
        (["grant", "gc_nobody", "--role", "reader", "--password-env", "GC_UNSET"], {}, "not set or empty"),
        (["revoke", "gc_nobody", "--role", "reader"], {}, "there is no role 'gc_nobody'"),
        (["grant", "gc_nobody", "--role", "admin"], {}, "invalid choice: 'admin'"),
    ],
)
def test_grant_and_revoke_say_what_is_wrong_in_one_line(dsn, args, env, message):
    result = run_cli(*args, dsn=dsn, env=env)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


def test_the_demo_runs_as_a_service_login_that_is_no_superuser(dsn, pg_server, cleanup_roles):
    """The driver as docker-compose runs it: a login that is loader, refresher and reader."""
    cleanup_roles.append("gc_app")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE ROLE gc_app LOGIN")
    assert run_cli("grant", "gc_app", "--role", "loader", "--role", "refresher", "--role", "reader",
                   dsn=dsn).returncode == 0  # fmt: skip
    app_dsn = dsn.replace("postgresql://postgres@", "postgresql://gc_app@")
    result = run_cli("demo", "--orders", "500", dsn=app_dsn)
    assert result.returncode == 0, result.stderr
    assert "left to a superuser" in result.stdout and "KPIs before and after" in result.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM globalcart.fact_orders") > 500
        assert scalar(conn, "SELECT count(DISTINCT audited_by) FROM globalcart.audit_fact_orders "
                            "WHERE audited_by <> 'gc_app'") == 0  # fmt: skip
