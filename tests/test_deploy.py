"""docker-compose.yml, read (no Docker engine runs here): PostgreSQL published on 127.0.0.1 only,
no password written in a committed file, every password from a git-ignored .env whose example is
committed, and only the one-shot setup service logs in as the superuser — and, in the cdc profile,
the one-shot cdc service (CREATE SUBSCRIPTION needs one)."""

import re

from helpers import ROOT

COMPOSE = (ROOT / "docker-compose.yml").read_text()


def _service(name: str) -> str:
    match = re.search(rf"^  {name}:\n(.*?)(?=^  \w+:\n|^\S)", COMPOSE, re.S | re.M)
    assert match, name
    return match.group(1)


def test_the_database_is_published_on_loopback_only():
    ports = re.findall(r'^\s+- "([^"]+:5432)"', COMPOSE, re.M)
    assert ports == ["127.0.0.1:5432:5432", "127.0.0.1:5433:5432"]  # the warehouse; the cdc profile's source


def test_passwords_come_from_a_git_ignored_env_file_with_a_committed_example():
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE))
    assert variables == {"POSTGRES_PASSWORD", "APP_PASSWORD", "BI_PASSWORD", "SOURCE_PASSWORD"}
    values = re.findall(r"PASSWORD:\s+(\S+)", COMPOSE) + re.findall(r"postgresql://\w+:([^@]+)@", COMPOSE)
    assert values and all(v.startswith("${") for v in values), values  # no literal password anywhere
    example = (ROOT / ".env.example").read_text()
    assert {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")} == (
        variables
    )
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_only_setup_logs_in_as_the_superuser_and_the_others_as_role_members():
    assert "postgresql://postgres:" in _service("setup")
    assert "postgresql://app:" in _service("demo") and "postgresql://bi:" in _service("bi")
    setup = _service("setup")
    assert "grant app --role loader --role refresher --role reader" in setup
    assert "grant bi --role reader" in setup and "schedule --follow" in setup
    assert "postgres:" not in _service("demo") + _service("bi")


def test_the_cdc_profile_adds_a_logical_source_and_a_one_shot_feed():
    source, feed = _service("source"), _service("cdc")
    assert 'profiles: ["cdc"]' in source and 'profiles: ["cdc"]' in feed  # not part of a plain `up`
    assert "wal_level=logical" in source and "max_slot_wal_keep_size" in source
    assert "source init --id-start" in feed and "cdc attach" in feed and "source simulate" in feed
    # attach needs the warehouse's superuser; the source's password comes from .env as well
    assert "postgresql://postgres:${POSTGRES_PASSWORD}@db" in feed
    assert "postgresql://postgres:${SOURCE_PASSWORD}@source:5432/shop" in feed
    assert "condition: service_completed_successfully" in feed and "condition: service_healthy" in feed
