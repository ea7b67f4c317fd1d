"""The dashboard command: ``globalcart dashboard`` serves the live dashboard (docs/dashboard.md)."""

from __future__ import annotations

import argparse
import os
import socket

from driver.commands.args import PROJECT_DIR, add_dsn, port_number
from driver.core import db
from driver.core.errors import DriverError


def cmd_dashboard(args: argparse.Namespace) -> int:
    """``globalcart dashboard``: the live dashboard of a warehouse, on http://HOST:PORT/."""
    import uvicorn

    from driver.dashboard.app import create_app

    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if dsn is None:  # the demo's own server, like `demo`
        from driver.servers.embedded import start_local_server

        server, _ = start_local_server(PROJECT_DIR)
        dsn = server.dsn()
    with db.connect(dsn) as conn:
        reader = conn.execute("SELECT to_regrole('globalcart_reader') IS NOT NULL "
                              "AND pg_has_role(current_user, 'globalcart_reader', 'MEMBER')").fetchone()[0]  # fmt: skip
        if not reader:
            raise DriverError("this login is not a member of globalcart_reader: create one with `globalcart grant "
                              "dashboard --role reader --password-env VAR` and connect as it")  # fmt: skip
        db.require_schema(conn, "globalcart.dashboard_run(bigint)")
    with socket.socket() as probe:  # (uvicorn would log a traceback-like error and exit)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise DriverError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}): pass another --port",
                              exit_code=1) from None
    print(f"dashboard of {db.describe_target(dsn)} on http://{args.host}:{args.port}/ (reads as globalcart_reader; "
          "Ctrl-C stops it)", flush=True)  # fmt: skip
    uvicorn.run(create_app(dsn), host=args.host, port=args.port, log_level="warning")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
    p = commands.add_parser(
        "dashboard",
        help="the live KPI dashboard in the browser (tiles, trends, why the KPIs moved, the pipeline)",
        description="Serve the live dashboard of the warehouse on http://HOST:PORT/: the fourteen KPIs with their "
        "change since a snapshot and its causes, daily trends, the pipeline's health and its last runs, read again "
        "every few seconds. Every read runs as globalcart_reader, GET only. Without --dsn or DATABASE_URL: the "
        "demo's own server.",
    )
    add_dsn(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port_number, default=8360, help="port (default: 8360)")
    p.set_defaults(func=cmd_dashboard)
