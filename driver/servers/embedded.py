"""Our own PostgreSQL servers, started with ``pg_ctl`` from the installed server binaries:
throwaway ones (``start_server``: the benchmark; the tests start theirs from ``prepare_server``
through pytest-postgresql) and the lasting local one of ``demo`` and ``server``.

initdb and postgres refuse to run as root, so when we are root the server runs as an
unprivileged system user (``postgres`` where the Debian package created it, else ``nobody``)
through a small pg_ctl wrapper; everything else (connecting, creating databases) is ordinary.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

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


def require_pg_cron(pg_bin: Path) -> None:
    """Raise, saying which package to install, unless the server of ``pg_bin`` has pg_cron."""
    if not (pg_bin.parent / "lib" / "pg_cron.so").exists():
        raise EmbeddedServerError(
            f"pg_cron is not installed for the server in {pg_bin.parent}: "
            f"apt-get install postgresql-{pg_bin.parent.name}-cron"
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
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
    """A throwaway server of ours: its data directory, log and socket live in ``basedir``, and
    ``pg_ctl`` (as root: a wrapper that runs it as an unprivileged user) drives it.
    ``dsn(dbname)`` gives a connection string to one of its databases."""

    host: str
    port: int
    user: str
    basedir: Path
    pg_ctl: Path
    options: str  # postgres -c options beyond the port and socket (pg_cron, durability, hba file)

    @property
    def datadir(self) -> Path:
        """The server's data directory."""
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self.basedir / "postgresql.log"

    def dsn(self, dbname: str) -> str:
        """The DSN of database ``dbname`` on this server (trust on 127.0.0.1)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def _pg_ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        return subprocess.run([str(self.pg_ctl), *args], capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)  # fmt: skip

    def initdb(self) -> None:
        """Creates the data directory (initdb), with trust for the server's own user."""
        result = self._pg_ctl("initdb", "-D", str(self.datadir), "-o", f"--auth=trust --username={self.user}")
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed in {self.datadir}: {result.stderr.strip()[-300:]}")

    def start(self) -> None:
        """Start the server on its data directory (after initdb, or after crash())."""
        options = f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories='{self.basedir}' "
        result = self._pg_ctl("start", "-w", "-D", str(self.datadir), "-l", str(self.logfile), "-o",
                              options + self.options)  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedServerError(f"the embedded PostgreSQL did not start; see {self.logfile}")

    def crash(self) -> None:
        """Stop the server as a power cut would: ``pg_ctl stop -m immediate`` (no checkpoint; the
        next start replays the WAL)."""
        self._pg_ctl("stop", "-D", str(self.datadir), "-m", "immediate")

    def stop(self) -> None:
        """Stop the server and remove everything it had."""
        try:
            self._pg_ctl("stop", "-D", str(self.datadir), "-m", "fast")
        finally:
            self.remove_files()

    def remove_files(self) -> None:
        """Removes the server's files (after it stopped)."""
        shutil.rmtree(self.basedir, ignore_errors=True)
        if self.pg_ctl.name == "pg_ctl" and self.pg_ctl.parent.name.startswith("globalcart-pgctl-"):
            shutil.rmtree(self.pg_ctl.parent, ignore_errors=True)  # root's wrapper


def _prepare_basedir(pg_bin: Path, basedir: Path) -> Path:
    """Create ``basedir`` for a server's files; the pg_ctl to use for it. As root: a wrapper that
    runs pg_ctl as an unprivileged user, who then owns ``basedir`` — the wrapper itself lives in a
    directory of root's own, so that the server's user cannot change what root executes."""
    basedir.mkdir(parents=True, exist_ok=True)
    pg_ctl = pg_bin / "pg_ctl"
    if os.geteuid() != 0:
        return pg_ctl
    user = _server_user()
    os.chown(basedir, user.pw_uid, user.pw_gid)
    wrapper = Path(tempfile.mkdtemp(prefix="globalcart-pgctl-")) / "pg_ctl"  # mode 0700, root's
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u {user.pw_name} -- "{pg_ctl}" "$@"\n')
    wrapper.chmod(stat.S_IRWXU)
    return wrapper


def server_options(cron_database: str | None) -> str:
    """postgres options of our servers: pg_cron preloaded for ``cron_database`` (None: no pg_cron)."""
    options = "-c max_connections=100"
    if cron_database:
        options += f" -c shared_preload_libraries=pg_cron -c cron.database_name={cron_database}"
    return options


def prepare_server(
    *,
    basedir: Path | None = None,
    port: int | None = None,
    cron_database: str = "postgres",
    extra_options: str = "",
    durable: bool = True,
    preload_cron: bool = True,
    hba_lines: tuple[str, ...] = (),
) -> EmbeddedServer:
    """A server's files and options, not yet initialised nor started (``start_server`` does both;
    the tests hand it to pytest-postgresql's executor instead).

    ``cron_database`` becomes ``cron.database_name``: pg_cron's scheduler runs there, and only
    there can ``CREATE EXTENSION pg_cron`` succeed. ``durable=False`` turns off fsync (for tests:
    faster, and a crash loses nothing that matters). ``preload_cron=False`` gives a server without
    pg_cron, as many stock servers are. ``hba_lines`` come before the trust rules of its
    pg_hba.conf (e.g. a password rule for one role).
    """
    pg_bin = find_pg_bin()
    if preload_cron:
        require_pg_cron(pg_bin)
    if basedir is None:
        basedir = Path(tempfile.mkdtemp(prefix="globalcart-pg-"))
    pg_ctl = _prepare_basedir(pg_bin, basedir)
    options = server_options(cron_database if preload_cron else None)
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
    return EmbeddedServer("127.0.0.1", port or free_port(), "postgres", basedir, pg_ctl, options)


def start_server(**options: Any) -> EmbeddedServer:
    """Initialise and start a throwaway server with ``pg_ctl`` (options: see ``prepare_server``)."""
    server = prepare_server(**options)
    try:
        server.initdb()
        server.start()
    except BaseException:
        server.remove_files()
        raise
    return server


# ---------------------------------------------------------------------------------------------
# A lasting local server for `demo` (and `server start|stop|status`): data under the project, left
# running so that psql can connect. It admits only who it should: over TCP it listens on 127.0.0.1
# alone and asks for a password (scram-sha-256), generated at its first start into a pgpass file
# that only the user who started it can read (the DSN names the file, never the password); its
# socket lives in a directory only the server's OS user can enter (there, and only there, it
# trusts: that is how pg_cron's own connections get in). As root, pg_ctl runs as the server's user
# through runuser, and nothing that user can write is ever executed by root.
# ---------------------------------------------------------------------------------------------

LOCAL_DATABASE = "globalcart"
LOCAL_HBA = """# GlobalCart 360 demo server, written by the driver.
# The socket directory is mode 0700, owned by the server's OS user: only it (and root) can connect there.
local   all   all                 trust
host    all   all   127.0.0.1/32  scram-sha-256
"""


def local_basedir(project_dir: Path) -> Path:
    """``$GLOBALCART_HOME`` or ``<project>/.globalcart``; as root, when the server's user cannot
    reach it (e.g. a checkout under /root), a folder under /var/lib/globalcart named after it."""
    if os.environ.get("GLOBALCART_HOME"):
        basedir = Path(os.environ["GLOBALCART_HOME"]).resolve()
        project_dir = basedir.parent
    else:
        basedir = project_dir / ".globalcart"
    if os.geteuid() != 0:
        return basedir
    user = _server_user()
    probe = subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "test", "-x", str(project_dir)], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return basedir
    digest = hashlib.sha1(str(project_dir).encode()).hexdigest()[:10]  # noqa: S324 - a folder name
    parent = Path("/var/lib/globalcart")
    parent.mkdir(mode=0o755, exist_ok=True)
    return parent / digest


@dataclass
class LocalServer:
    """The lasting local server of the demo: data under the project, a password in a pgpass file
    only its owner reads."""
    basedir: Path
    port: int
    pg_bin: Path

    @property
    def datadir(self) -> Path:
        """The server's data directory."""
        return self.basedir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        """The socket directory, which only the server's OS user may enter."""
        return self.basedir / "socket"

    @property
    def passfile(self) -> Path:
        """The pgpass file with the password of ``postgres``: owned by, and readable only by, the user
        who started the server — as root, beside basedir, which belongs to the server's user."""
        if os.geteuid() == 0:
            return self.basedir.with_name(self.basedir.name + ".pgpass")
        return self.basedir / "pgpass"

    def dsn(self, dbname: str = LOCAL_DATABASE) -> str:
        """The DSN of the warehouse database, naming the pgpass file (never the password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}?passfile={self.passfile}"

    def socket_dsn(self, dbname: str) -> str:
        """Through the private socket (trusted there): how the server's own processes — a
        subscription's apply worker, which cannot read the passfile — connect to it."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def pg_ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """pg_ctl ARGS, as the server's OS user when we are root (runuser; no script of ours)."""
        argv = [str(self.pg_bin / "pg_ctl"), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", _server_user().pw_name, "--", *argv]
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=check)

    def running(self) -> bool:
        """Whether the server is up."""
        if not (self.datadir / "PG_VERSION").exists():
            return False
        return self.pg_ctl("status", "-D", str(self.datadir)).returncode == 0

    def stop(self) -> bool:
        """Stops the server; False when it was not running."""
        if not self.running():
            return False
        self.pg_ctl("stop", "-D", str(self.datadir), "-m", "fast", check=True)
        return True


def local_server(project_dir: Path, pg_bin: Path | None = None) -> LocalServer:
    """The project's local server (not necessarily running)."""
    basedir = local_basedir(project_dir)
    basedir.mkdir(parents=True, exist_ok=True)
    port_file = basedir / "port"
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    port_file.write_text(str(port))
    if os.geteuid() == 0:
        user = _server_user()
        os.chown(basedir, user.pw_uid, user.pw_gid)
    return LocalServer(basedir, port, pg_bin or find_pg_bin())


def _own(path: Path, mode: int) -> None:
    """As root: hand ``path`` to the server's OS user (it must read or enter it); set its mode."""
    if os.geteuid() == 0:
        user = _server_user()
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _write_passfile(server: LocalServer, password: str) -> None:
    fd = os.open(server.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"127.0.0.1:*:*:postgres:{password}\n")
    server.passfile.chmod(0o600)


def _initdb(server: LocalServer) -> None:
    """A new data directory: scram-sha-256 over TCP, trust on the private socket, a new password."""
    password = secrets.token_urlsafe(24)
    pwfile = server.basedir / "initdb-password"
    pwfile.write_text(password + "\n")
    _own(pwfile, 0o600)
    try:
        options = f"--username=postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile={pwfile}"
        result = server.pg_ctl("initdb", "-D", str(server.datadir), "-o", options)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise EmbeddedServerError(f"initdb failed in {server.datadir}: {result.stderr.strip()[-300:]}")
    _write_passfile(server, password)


def _write_hba(server: LocalServer) -> None:
    hba = server.datadir / "pg_hba.conf"
    hba.write_text(LOCAL_HBA)
    _own(hba, 0o600)


def start_local_server(project_dir: Path) -> tuple[LocalServer, bool]:
    """Start the project's server if it is not running (initialising it the first time);
    returns it and whether it was started now. The database ``globalcart`` exists after. A data
    directory from before passwords (trust everywhere) is given one at its next start."""
    pg_bin = find_pg_bin()
    require_pg_cron(pg_bin)
    server = local_server(project_dir, pg_bin)
    if server.running() and server.passfile.exists():
        return server, False
    server.stop()
    (server.basedir / "pg_ctl-as-user").unlink(missing_ok=True)  # an older driver's wrapper: never run again
    if not (server.datadir / "PG_VERSION").exists():
        _initdb(server)
    legacy = not server.passfile.exists()
    _write_hba(server)
    server.socket_dir.mkdir(exist_ok=True)
    _own(server.socket_dir, 0o700)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
            server.port = free_port()  # the saved port is taken by something else
            (server.basedir / "port").write_text(str(server.port))
    except OSError:
        pass
    options = (
        f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{server.socket_dir}' "
        f"-c cron.host='{server.socket_dir}' -c password_encryption=scram-sha-256 "
        # logical WAL: `demo --cdc` subscribes a warehouse to a shop database of this server
        "-c wal_level=logical " + server_options(LOCAL_DATABASE)
    )
    result = server.pg_ctl("start", "-w", "-D", str(server.datadir), "-l", str(server.basedir / "postgresql.log"),
                           "-o", options)  # fmt: skip
    if result.returncode != 0:
        raise EmbeddedServerError(f"the local PostgreSQL did not start; see {server.basedir / 'postgresql.log'}")
    if legacy:  # over the private socket (trusted), give postgres a password
        password = secrets.token_urlsafe(24)
        with psycopg.connect(host=str(server.socket_dir), port=server.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            verifier = conn.pgconn.encrypt_password(password.encode(), b"postgres", b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(verifier)))
        _write_passfile(server, password)
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (LOCAL_DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {LOCAL_DATABASE}")
    return server, True
