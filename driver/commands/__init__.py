"""Command line of GlobalCart 360: ``python -m driver <command>`` (also installed as ``globalcart``).

The driver holds no refresh logic: it applies the SQL, calls the database's functions and
prints what they return. Every failure is one line on stderr and a non-zero exit. Each command
group is a module of this package that registers its own commands (``register``): the pipeline
(migrate, refresh, health, seed, simulate), the KPIs, history, operations (schedule, roles, the
local server), the demo, the dashboard, sources (the OLTP source, CDC, Citus) and the benchmark.
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from driver.commands import bench, dashboard, demo, history, kpis, operations, pipeline, sources
from driver.core.errors import DriverError, connection_lost, describe_sql_error, first_line
from driver.servers.embedded import EmbeddedServerError

GROUPS = (pipeline, kpis, history, operations, demo, dashboard, sources, bench)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every group's commands."""
    parser = argparse.ArgumentParser(
        prog="globalcart",
        description="GlobalCart 360: a PostgreSQL-native incremental refresh of an e-commerce warehouse.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command; its exit status (errors: one line on stderr, never a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DriverError as err:
        print(f"globalcart: {err}", file=sys.stderr)
        return err.exit_code
    except EmbeddedServerError as err:
        print(f"globalcart: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        if connection_lost(exc):
            print(f"globalcart: lost the database connection: {first_line(exc)}", file=sys.stderr)
        else:
            print(f"globalcart: {describe_sql_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("globalcart: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        sys.stderr.close()
        return 141
