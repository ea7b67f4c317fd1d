"""docker-compose.yml, parsed (no Docker engine runs here): PostgreSQL published on 127.0.0.1 only,
no password written in a committed file, every password from a git-ignored .env whose example is
committed, the services started in order, and only the one-shot setup service logs in as the
superuser — and, in the cdc profile, the one-shot cdc service (CREATE SUBSCRIPTION needs one)."""

import re

import yaml
from helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _environment(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}


def _command(name: str) -> str:
    service = SERVICES[name]
    parts = service.get("entrypoint") or service.get("command") or []
    return " ".join(parts) if isinstance(parts, list) else str(parts)


def _login(url: str) -> str:
    match = re.match(r"postgresql://(\w+):", url)
    assert match, url
    return match.group(1)


def test_the_services_and_their_order():
    assert set(SERVICES) == {"db", "setup", "demo", "bi", "dashboard", "source", "cdc"}
    assert SERVICES["setup"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert SERVICES["demo"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert SERVICES["bi"]["depends_on"] == {"demo": {"condition": "service_completed_successfully"}}
    assert SERVICES["dashboard"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert SERVICES["cdc"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"},
                                             "source": {"condition": "service_healthy"}}  # fmt: skip
    for name in ("db", "source"):
        assert "pg_isready" in " ".join(SERVICES[name]["healthcheck"]["test"])
    assert SERVICES["db"]["build"]["dockerfile"] == "db/Dockerfile" and (ROOT / "db" / "Dockerfile").exists()
    for name in ("setup", "demo", "bi", "dashboard", "cdc"):
        assert SERVICES[name]["build"]["dockerfile"] == "driver/Dockerfile"
    assert (ROOT / "driver" / "Dockerfile").exists()


def test_the_databases_and_the_dashboard_are_published_on_loopback_only():
    published = {name: s.get("ports", []) for name, s in SERVICES.items() if s.get("ports")}
    assert published == {"db": ["127.0.0.1:5432:5432"], "source": ["127.0.0.1:5433:5432"],
                         "dashboard": ["127.0.0.1:8360:8360"]}  # fmt: skip
    # inside its container the dashboard listens on every address (else the published port reaches nothing)
    assert SERVICES["dashboard"]["command"] == ["dashboard", "--host", "0.0.0.0", "--port", "8360"]  # noqa: S104 (a container's own address)


def test_passwords_come_from_a_git_ignored_env_file_with_a_committed_example():
    text = (ROOT / "docker-compose.yml").read_text()
    variables = set(re.findall(r"\$\{(\w+)", text))
    assert variables == {"POSTGRES_PASSWORD", "APP_PASSWORD", "BI_PASSWORD", "SOURCE_PASSWORD"}
    for name in SERVICES:
        for key, value in _environment(name).items():
            if "PASSWORD" in key:
                assert value.startswith("${"), (name, key)  # no literal password anywhere
            for password in re.findall(r"postgresql://\w+:([^@]+)@", value):
                assert password.startswith("${"), (name, key)
    example = (ROOT / ".env.example").read_text()
    assert {line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")} == (
        variables
    )
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_only_setup_logs_in_as_the_superuser_and_the_others_as_role_members():
    services = ("setup", "demo", "bi", "dashboard", "cdc")
    logins = {name: _login(_environment(name)["DATABASE_URL"]) for name in services}
    # (the dashboard refuses a login that is not a member of globalcart_reader: bi is one)
    assert logins == {"setup": "postgres", "demo": "app", "bi": "bi", "dashboard": "bi", "cdc": "postgres"}
    setup = _command("setup")
    assert "grant app --role loader --role refresher --role reader --password-env APP_PASSWORD" in setup
    assert "grant bi --role reader --password-env BI_PASSWORD" in setup and "schedule --follow" in setup
    assert SERVICES["demo"]["command"] == ["demo"] and SERVICES["bi"]["command"] == ["health"]


def test_the_cdc_profile_adds_a_logical_source_and_a_one_shot_feed():
    source, feed = SERVICES["source"], SERVICES["cdc"]
    assert source["profiles"] == ["cdc"] and feed["profiles"] == ["cdc"]  # not part of a plain `up`
    assert "wal_level=logical" in source["command"] and any("max_slot_wal_keep_size" in c for c in source["command"])
    command = _command("cdc")
    assert "source init --id-start" in command and "cdc attach" in command and "source simulate" in command
    # attach needs the warehouse's superuser; the source's password comes from .env as well
    assert _environment("cdc")["SOURCE_DATABASE_URL"] == "postgresql://postgres:${SOURCE_PASSWORD}@source:5432/shop"
