#!/usr/bin/env bash
# Install (first time) and start the dashboard on http://127.0.0.1:8501 (set PORT / ADDRESS to change).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
[[ -f .venv/offline-env ]] && source .venv/offline-env
exec .venv/bin/python -m streamlit run dashboard/app.py \
  --server.address "${ADDRESS:-127.0.0.1}" --server.port "${PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false "$@"
