"""Running it: schedule and unschedule the pg_cron jobs, grant and revoke roles, the local server."""

from __future__ import annotations

import argparse

from driver.commands.args import PROJECT_DIR, add_dsn
from driver.core import db


def cmd_schedule(args: argparse.Namespace) -> int:
    """``globalcart schedule``: registers the pg_cron jobs (the refresh or the follow loop, retention)."""
    from driver.core.schedule import schedule

    done = schedule(db.resolve_dsn(args.dsn), args.every, follow=args.follow, run_as=args.run_as)
    where = (
        ""
        if done.cron_database == done.warehouse
        else f" (registered in '{done.cron_database}' for '{done.warehouse}')"
    )
    what = (
        "CALL globalcart.refresh_for() every minute (follow mode: a refresh every second while rows arrive)"
        if args.follow
        else f"the refresh at '{args.every}', bounded by max_run_time"
    )
    print(f"scheduled: pg_cron job {done.job_id} 'globalcart-incremental-refresh' runs {what} as {args.run_as}"
          f"{where}; daily jobs purge history (purge_history) and cron.job_run_details older than 7 days")  # fmt: skip
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    """``globalcart grant`` / ``revoke``: gives or takes a user's globalcart roles."""
    from driver.core.access import grant, revoke

    with db.connect(db.resolve_dsn(args.dsn), autocommit=True) as conn:
        db.require_schema(conn, "globalcart.etl_refresh_lock")
        if args.command == "grant":
            after = grant(conn, args.user, args.role, args.password_env)
        else:
            after = revoke(conn, args.user, args.role)
    print(f"{args.user}: {'member of ' + ', '.join(after) if after else 'member of no globalcart role'}")
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    """``globalcart unschedule``: removes the pg_cron jobs."""
    from driver.core.schedule import unschedule

    existed = unschedule(db.resolve_dsn(args.dsn))
    print("unscheduled: the refresh no longer runs by pg_cron" if existed else "nothing to unschedule")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    """``globalcart server start|stop|status``: the demo's own PostgreSQL."""
    from driver.servers.embedded import local_server, start_local_server

    if args.action == "start":
        server, started = start_local_server(PROJECT_DIR)
        print(f"{'started' if started else 'already running'}: {server.dsn()} (data in {server.datadir}; the "
              f"password is in {server.passfile})")  # fmt: skip
        print(f"connect: psql '{server.dsn()}'")
    elif args.action == "stop":
        server = local_server(PROJECT_DIR)
        print("stopped" if server.stop() else "not running")
    else:
        server = local_server(PROJECT_DIR)
        print(f"running: {server.dsn()}" if server.running() else "not running")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Adds this group's commands to the command line."""
    p = commands.add_parser("schedule", help="run the refresh with pg_cron",
                            description="Register the pg_cron job globalcart-incremental-refresh (the refresh, bounded "
                            "by etl_settings max_run_time; or with --follow the follow loop), a daily "
                            "globalcart.purge_history() and a daily purge of cron.job_run_details. Where pg_cron lives "
                            "in another database (cron.database_name), the jobs are registered there with "
                            "cron.schedule_in_database.")  # fmt: skip
    add_dsn(p)
    p.add_argument("--every", default="* * * * *", metavar="CRON", help="cron schedule (default: every minute)")
    p.add_argument(
        "--follow",
        action="store_true",
        help="follow mode: every minute the job runs CALL globalcart.refresh_for(), which refreshes again and "
        "again for 55 seconds, so rows are applied within seconds",
    )
    p.add_argument("--run-as", default="globalcart_cron", metavar="ROLE",
                   help="the login role pg_cron runs the jobs as: a member of globalcart_refresher, not a superuser "
                        "(default: globalcart_cron, created by migrate)")  # fmt: skip
    p.set_defaults(func=cmd_schedule)

    for name, verb in (("grant", "give"), ("revoke", "take away")):
        p = commands.add_parser(
            name,
            help=f"{verb} a user's globalcart roles (loader, refresher, reader, auditor)",
            description=f"{verb.capitalize()} USER the group roles of docs/contract.md §6: GRANT/REVOKE "
            "globalcart_<role> TO/FROM USER. Needs a role that may grant them (a superuser).",
        )
        add_dsn(p)
        p.add_argument("user", help="the login role (a person or a service)")
        p.add_argument("--role", action="append", required=True, choices=("loader", "refresher", "reader", "auditor"),
                       help="a group role; repeat for several")  # fmt: skip
        if name == "grant":
            p.add_argument("--password-env", metavar="VAR",
                           help="create USER as a login role when missing, with the password in $VAR "
                                "(sent hashed: SCRAM-SHA-256)")  # fmt: skip
        p.set_defaults(func=cmd_access)

    p = commands.add_parser("unschedule", help="stop running the refresh with pg_cron")
    add_dsn(p)
    p.set_defaults(func=cmd_unschedule)

    p = commands.add_parser("server", help="the local PostgreSQL that demo starts (start, stop, status)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_server)
