#!/usr/bin/env bash
# Make .venv and install the project into it (idempotent: a second run installs nothing new).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # The pinned CPU wheel first: a bare `torch` would pull a multi-GB CUDA build.
  # GPU users: install a CUDA build of torch into .venv before running this script.
  .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -r "${1:-requirements.txt}"
# This workplace keeps an offline copy of the GPT-2 tokenizer beside the project.
if [[ -z "${TIKTOKEN_CACHE_DIR:-}" && -d ../shared/data/tiktoken_cache ]]; then
  echo "export TIKTOKEN_CACHE_DIR=$(cd ../shared/data/tiktoken_cache && pwd)" > .venv/offline-env
fi
