"""``grant`` / ``revoke``: give people and services the group roles of docs/contract.md §6.

``globalcart grant alice --role reader`` is ``GRANT globalcart_reader TO alice``; with
``--password-env VAR`` a missing login role is created first, with the password in ``$VAR``,
hashed here (SCRAM-SHA-256, by libpq) so that the plain password never reaches the server or its
logs. Both need a role that may grant them (a superuser, or one with ADMIN OPTION).
"""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

from driver.core.errors import DriverError

GROUPS = ("loader", "refresher", "reader", "auditor")


def memberships(conn: psycopg.Connection, user: str) -> list[str]:
    """The globalcart group roles ``user`` is a direct member of."""
    rows = conn.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s AND g.rolname LIKE 'globalcart\\_%%' ORDER BY 1",
        (user,),
    ).fetchall()
    return [name for (name,) in rows]


def _exists(conn: psycopg.Connection, user: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None


def grant(conn: psycopg.Connection, user: str, groups: list[str], password_env: str | None = None) -> list[str]:
    """Make ``user`` a member of ``globalcart_<group>`` for each group (creating it as a login role
    with the password in ``$password_env`` when it is missing); its memberships after."""
    with conn.transaction():
        if not _exists(conn, user):
            if password_env is None:
                raise DriverError(
                    f"there is no role {user!r}: create it (CREATE ROLE {sql.Identifier(user).as_string(conn)} LOGIN "
                    "PASSWORD '…';) or pass --password-env VAR to create it with the password in $VAR."
                )
            password = os.environ.get(password_env)
            if not password:
                raise DriverError(f"--password-env {password_env}: that environment variable is not set or empty.", 2)
            verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier))
            )
        for group in groups:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(f"globalcart_{group}"), sql.Identifier(user)))
    return memberships(conn, user)


def revoke(conn: psycopg.Connection, user: str, groups: list[str]) -> list[str]:
    """Take ``globalcart_<group>`` away from ``user`` for each group; its memberships after."""
    with conn.transaction():
        if not _exists(conn, user):
            raise DriverError(f"there is no role {user!r}.")
        for group in groups:
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(f"globalcart_{group}"), sql.Identifier(user))
            )
    return memberships(conn, user)
