#!/usr/bin/env bash
# The test command: set up what is missing (.ci/setup.sh), then run pytest against a real
# PostgreSQL that the tests start themselves (pg_cron preloaded). Arguments go to pytest,
# e.g. `bash tests/run.sh -k refresh -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash .ci/setup.sh
exec .venv/bin/python -m pytest "$@"
