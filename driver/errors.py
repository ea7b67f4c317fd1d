"""Errors the driver reports as one line (never a traceback), and how database errors map to them."""

from __future__ import annotations

import psycopg


class DriverError(Exception):
    """A problem the user can act on. ``str(err)`` is the one line printed; ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def describe_connect_error(exc: psycopg.Error, target: str) -> DriverError:
    """Turn a failed connection into a message that says what to do."""
    detail = first_line(exc)
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return DriverError(f"cannot log in to {target}: {detail}. Fix the user or password in --dsn / DATABASE_URL.")
    if "does not exist" in lowered and "database" in lowered:
        return DriverError(
            f"{detail} on {target}. Create it (createdb) or fix the database name in --dsn / DATABASE_URL."
        )
    if any(
        marker in lowered
        for marker in ("invalid dsn", "invalid connection option", "invalid uri", "invalid integer value")
    ):
        return DriverError(f"invalid connection string: {detail}. Use postgresql://user:password@host:port/dbname.")
    return DriverError(
        f"cannot connect to {target}: {detail}. Is PostgreSQL running there? Check --dsn / DATABASE_URL."
    )


def describe_sql_error(exc: psycopg.Error) -> DriverError:
    """A database error raised while running a command: its message, its HINT when the server gave one."""
    diag = getattr(exc, "diag", None)
    message = diag.message_primary if diag and diag.message_primary else first_line(exc)
    sqlstate = diag.sqlstate if diag else None
    hint = diag.message_hint if diag else None
    text = f"database error{f' {sqlstate}' if sqlstate else ''}: {message}"
    if hint:
        text += f" (hint: {hint})"
    return DriverError(text)
