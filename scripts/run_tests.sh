#!/usr/bin/env bash
# Install (first time) and run the whole test suite: unit, page (AppTest) and browser tests.
# Browser tests need Chromium at /usr/bin/chromium (`apt-get install -y chromium`); without it
# they are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
[[ -f .venv/offline-env ]] && source .venv/offline-env
exec .venv/bin/python -m pytest "$@"
