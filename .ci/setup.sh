#!/usr/bin/env bash
# Set-up shared by the README's commands and CI, safe to run again: installs what GlobalCart 360
# needs on Debian or Ubuntu and prepares the virtual environment .venv.
#   - PostgreSQL server binaries, with the matching pg_cron and plpgsql_check packages
#     (apt-get, when run as root; otherwise it says what to install);
#   - Citus, for the tests marked citus (docs/citus.md): built from the source that
#     $GLOBALCART_CITUS_SOURCE names (a folder with Citus's source and its install.sh; .ci/run sets
#     it) when it is not installed, as root — about a minute;
#   - python3-venv where the interpreter lacks it;
#   - .venv with this package and its dev extras (reinstalled only when pyproject.toml changes);
#   - .venv-dbt with dbt-core and dbt-postgres 1.11, for the bench's comparison with dbt (a venv
#     of its own: dbt pins versions of its own); GLOBALCART_NO_DBT=1 skips it;
#   - Debian's chromium, the real browser the dashboard's test drives headless through Playwright
#     (Playwright's own browser download is not used) — as root; otherwise it says what to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

pg_major() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin/pg_ctl" ] && basename "$(dirname "$bin")"
}

apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: $*. Install them (sudo apt-get install $*) and run this again."
    exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

major=$(pg_major || true)
if [ -z "$major" ]; then
  apt_install postgresql postgresql-contrib
  major=$(pg_major)
fi
missing=()
[ -f "/usr/lib/postgresql/$major/lib/pg_cron.so" ] || missing+=("postgresql-$major-cron")
[ -f "/usr/lib/postgresql/$major/lib/plpgsql_check.so" ] || missing+=("postgresql-$major-plpgsql-check")
[ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
chromium_note=""
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_install chromium
  else
    chromium_note=" (no chromium: sudo apt-get install chromium, for the dashboard's browser test)"
  fi
fi

citus_note=""
if [ ! -f "/usr/lib/postgresql/$major/lib/citus.so" ]; then
  citus_source=""
  candidate=${GLOBALCART_CITUS_SOURCE:-}
  if [ -n "$candidate" ] && [ -f "$candidate/install.sh" ]; then citus_source=$candidate; fi
  if [ -n "$citus_source" ] && [ "$(id -u)" -eq 0 ]; then
    say "building Citus from $citus_source (about a minute)"
    bash "$citus_source/install.sh" >&2
  elif [ -n "$citus_source" ]; then
    citus_note=" (no Citus: run sudo bash $citus_source/install.sh for the tests marked citus)"
  else
    citus_note=" (no Citus: the tests marked citus skip; docs/citus.md says how to install it)"
  fi
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
  apt_install python3 python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
stamp=.venv/.globalcart-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing the package into .venv"
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
          .venv/bin/python -m pip install -q -e '.[dev]'; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    say "pip install failed (log above)"
    exit 1
  fi
  echo "$want" > "$stamp"
fi
DBT_REQUIREMENTS="dbt-core==1.11.* dbt-postgres==1.11.*"
dbt_note=""
if [ "${GLOBALCART_NO_DBT:-}" = 1 ]; then
  dbt_note=" (no dbt: GLOBALCART_NO_DBT=1)"
elif [ ! -x .venv-dbt/bin/dbt ] || [ "$(cat .venv-dbt/.globalcart-installed 2>/dev/null)" != "$DBT_REQUIREMENTS" ]; then
  say "installing dbt into .venv-dbt (for the bench's comparison with dbt)"
  # shellcheck disable=SC2086 # (the requirements are words)
  if "$PYTHON" -m venv .venv-dbt && .venv-dbt/bin/python -m pip install -q $DBT_REQUIREMENTS >.venv-dbt/pip.log 2>&1; then
    echo "$DBT_REQUIREMENTS" > .venv-dbt/.globalcart-installed
  else
    tail -n 20 .venv-dbt/pip.log >&2 || true
    say "pip install of dbt failed (log above)"
    exit 1
  fi
fi
citus_have=""
[ -f "/usr/lib/postgresql/$major/lib/citus.so" ] && citus_have=", Citus"
dbt_have=""
[ -x .venv-dbt/bin/dbt ] && dbt_have=", .venv-dbt"
chromium_have=""
[ -x /usr/bin/chromium ] && chromium_have=", chromium"
say "ready: PostgreSQL $major with pg_cron and plpgsql_check$citus_have, .venv$dbt_have$chromium_have$citus_note$dbt_note$chromium_note"
