"""Errors the driver reports as one line (never a traceback), and how database errors map to them.

Errors are told apart by psycopg's exception classes and SQLSTATEs, never by message text (the
server may speak another language): a connection string libpq cannot parse is a
``ProgrammingError``; a failed login is SQLSTATE class 28, a missing database 3D000 — where libpq
reports them (for a failed connection attempt it often reports none, and the server's own
message is shown with what to check); a connection lost mid-command is class 08, a shutdown, or
an ``OperationalError`` without a SQLSTATE. Everything else is a database error shown with its
SQLSTATE and hint.
"""

from __future__ import annotations

import psycopg


class DriverError(Exception):
    """A problem the user can act on. ``str(err)`` is the one line printed; ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, without the SQLSTATE noise (one line for stderr)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def sqlstate(exc: psycopg.Error) -> str | None:
    """The SQLSTATE of a database error, where libpq reported one."""
    return exc.sqlstate or (exc.diag.sqlstate if exc.diag else None)


def describe_connect_error(exc: psycopg.Error, target: str) -> DriverError:
    """Turn a failed connection into a message that says what to do."""
    detail = first_line(exc)
    code = sqlstate(exc)
    if isinstance(exc, psycopg.ProgrammingError):  # libpq could not parse the connection string
        return DriverError(f"invalid connection string: {detail}. Use postgresql://user:password@host:port/dbname.")
    if code and code.startswith("28"):  # invalid_authorization_specification, invalid_password
        return DriverError(f"cannot log in to {target}: {detail}. Fix the user or password in --dsn / DATABASE_URL.")
    if code == "3D000":  # invalid_catalog_name
        return DriverError(
            f"{detail} on {target}. Create it (createdb) or fix the database name in --dsn / DATABASE_URL."
        )
    return DriverError(
        f"cannot connect to {target}: {detail}. Is PostgreSQL running there, and are the user, password and "
        "database right? Check --dsn / DATABASE_URL."
    )


def connection_lost(exc: psycopg.Error) -> bool:
    """Whether an error raised by a command means the connection itself is gone (the server
    restarted or shut down, the network dropped) rather than that the command failed: a
    connection exception or shutdown SQLSTATE, or an OperationalError that carries no SQLSTATE
    at all (libpq's own failure). QueryCanceled, LockNotAvailable or DiskFull are
    OperationalErrors too, but the server sent their SQLSTATE: the command failed, not the link."""
    code = sqlstate(exc)
    if code is None:
        return isinstance(exc, psycopg.OperationalError)
    return code.startswith("08") or code in ("57P01", "57P02", "57P03")  # connection_exception, shutdowns


def describe_sql_error(exc: psycopg.Error) -> DriverError:
    """A database error raised while running a command: its message, its HINT when the server gave one."""
    diag = exc.diag
    message = diag.message_primary if diag and diag.message_primary else first_line(exc)
    hint = diag.message_hint if diag else None
    code = sqlstate(exc)
    text = f"database error{f' {code}' if code else ''}: {message}"
    if hint:
        text += f" (hint: {hint})"
    return DriverError(text)
