"""What the command groups share: the --dsn option, the argument types (times, country codes,
counts, durations, shares), the exit codes and where the project lives."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from driver.core.migrate import SQL_DIR

EXIT_CRON_UNAVAILABLE = 3
EXIT_UNHEALTHY = 4
PROJECT_DIR = SQL_DIR.parent  # (the checkout: its db/, its .globalcart/ and .venv-dbt/)


def add_dsn(parser: argparse.ArgumentParser) -> None:
    """The --dsn option of a command that reaches the warehouse."""
    parser.add_argument(
        "--dsn",
        metavar="URL",
        help="database to use, e.g. postgresql://user:pass@localhost:5432/globalcart (default: $DATABASE_URL)",
    )



def timestamp(text: str) -> datetime:
    """An ISO 8601 time (a naive one is UTC), or 'now'."""
    if text == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601, e.g. 2026-11-28T10:00:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)



def country(text: str) -> str:
    """A two-letter country code, upper case."""
    if len(text) != 2 or not text.isalpha():
        raise argparse.ArgumentTypeError(f"{text!r} is not a two-letter country code (e.g. DE)")
    return text.upper()



def count(text: str) -> int:
    """A whole number, 0 or more."""
    return _whole(text, 0, "is negative: give 0 or more")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = _whole(text, 1, "is not a port: give 1 to 65535")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port: give 1 to 65535")
    return value


def positive(text: str) -> int:
    """A whole number, 1 or more."""
    return _whole(text, 1, "is not positive: give 1 or more")


def _whole(text: str, least: int, below: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} {below}")
    return value



def duration(text: str) -> timedelta:
    """90s, 5m, 1h."""
    from driver.simulation.shop import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None



def share(text: str) -> float:
    """A share between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value
