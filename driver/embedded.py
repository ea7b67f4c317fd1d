"""A throwaway PostgreSQL server with pg_cron preloaded, started by pytest-postgresql.

The tests use it, and so does ``demo`` when no DATABASE_URL is given. initdb and
postgres refuse to run as root, so when we are root the server runs as an unprivileged
system user (``postgres`` where the Debian package created it, else ``nobody``) through
a small pg_ctl wrapper; everything else (connecting, creating databases) is ordinary.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pytest_postgresql.executors import PostgreSQLExecutor

SERVER_USER_CANDIDATES = ("postgres", "nobody")


class EmbeddedServerError(RuntimeError):
    """The embedded server cannot be started here; the message says why and what to do."""


def find_pg_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL server (PG_BIN overrides)."""
    if os.environ.get("PG_BIN"):
        path = Path(os.environ["PG_BIN"])
        if not (path / "pg_ctl").exists():
            raise EmbeddedServerError(f"PG_BIN={path} holds no pg_ctl")
        return path
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise EmbeddedServerError(
        "no PostgreSQL server binaries found: install postgresql and postgresql-NN-cron "
        "(apt-get install postgresql postgresql-15-cron) or set PG_BIN"
    )


def has_pg_cron(pg_bin: Path) -> bool:
    """Whether the server of ``pg_bin`` has the pg_cron library installed."""
    pkglibdir = pg_bin.parent / "lib"
    return (pkglibdir / "pg_cron.so").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> pwd.struct_passwd:
    for name in SERVER_USER_CANDIDATES:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise EmbeddedServerError("running as root and no unprivileged user (postgres, nobody) to run the server as")


@dataclass
class EmbeddedServer:
    """A running server: ``dsn(dbname)`` gives a connection string to one of its databases."""

    executor: PostgreSQLExecutor
    host: str
    port: int
    user: str
    basedir: Path
    cron_database: str

    def dsn(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def stop(self) -> None:
        try:
            self.executor.stop()
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)


def start_server(
    *,
    basedir: Path | None = None,
    port: int | None = None,
    cron_database: str = "postgres",
    extra_options: str = "",
    durable: bool = True,
    preload_cron: bool = True,
    hba_lines: tuple[str, ...] = (),
) -> EmbeddedServer:
    """Initialise a data directory and start a server with pg_cron preloaded.

    ``cron_database`` becomes ``cron.database_name``: pg_cron's scheduler runs there, and
    only there can ``CREATE EXTENSION pg_cron`` succeed. ``durable=False`` turns off fsync
    (for tests: faster, and a crash loses nothing that matters). ``preload_cron=False`` starts
    a server without pg_cron, as many stock servers are. ``hba_lines`` come before the trust
    rules of the data directory's pg_hba.conf (e.g. a password rule for one role).
    """
    pg_bin = find_pg_bin()
    if preload_cron and not has_pg_cron(pg_bin):
        raise EmbeddedServerError(
            f"pg_cron is not installed for the server in {pg_bin.parent}: "
            f"apt-get install postgresql-{pg_bin.parent.name}-cron"
        )
    if basedir is None:
        basedir = Path(tempfile.mkdtemp(prefix="globalcart-pg-"))
    basedir.mkdir(parents=True, exist_ok=True)
    pg_ctl = pg_bin / "pg_ctl"
    if os.geteuid() == 0:
        user = _server_user()
        os.chown(basedir, user.pw_uid, user.pw_gid)
        wrapper = basedir / "pg_ctl-as-user"
        wrapper.write_text(f'#!/bin/sh\nexec runuser -u {user.pw_name} -- "{pg_ctl}" "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        pg_ctl = wrapper
    port = port or free_port()
    options = "-c max_connections=100"
    if preload_cron:
        options += f" -c shared_preload_libraries=pg_cron -c cron.database_name={cron_database}"
    if hba_lines:
        hba = basedir / "pg_hba.conf"
        hba.write_text(
            "\n".join(
                [*hba_lines, "local all all trust", "host all all 127.0.0.1/32 trust", "host all all ::1/128 trust"]
            )
            + "\n"
        )
        hba.chmod(0o644)
        options += f" -c hba_file={hba}"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if extra_options:
        options += " " + extra_options
    executor = PostgreSQLExecutor(
        executable=str(pg_ctl),
        host="127.0.0.1",
        port=port,
        datadir=str(basedir / "data"),
        unixsocketdir=str(basedir),
        logfile=str(basedir / "postgresql.log"),
        startparams="-w",
        dbname="postgres",
        postgres_options=options,
    )
    try:
        executor.start()
    except Exception as exc:  # the server log says why; point at it
        raise EmbeddedServerError(
            f"the embedded PostgreSQL did not start ({exc}); see {basedir / 'postgresql.log'}"
        ) from exc
    return EmbeddedServer(executor, "127.0.0.1", port, "postgres", basedir, cron_database)
