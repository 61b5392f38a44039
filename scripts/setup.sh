#!/usr/bin/env bash
# Make .venv and install the project into it (idempotent: a second run installs nothing new).
#   scripts/setup.sh [REQUIREMENTS]   install (requirements.txt by default)
#   scripts/setup.sh --torch-plan     print where torch would come from, install nothing
# torch: an installed one is kept. On Linux without an NVIDIA GPU the CPU build comes from
# PyTorch's CPU wheel index (PyPI's Linux wheel is the CUDA build, ~2.5 GB of CUDA libraries a
# CPU never uses); where that index does not answer within TORCH_INDEX_TIMEOUT_S seconds (an
# offline machine with a local wheel cache), the default index is used at once, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
PROBE_S=${TORCH_INDEX_TIMEOUT_S:-3}
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
NVIDIA_PROC=${NVIDIA_PROC:-/proc/driver/nvidia/version}

has_nvidia_gpu() {
  [[ -e "$NVIDIA_PROC" ]] && return 0
  command -v "$NVIDIA_SMI" >/dev/null 2>&1 && "$NVIDIA_SMI" -L >/dev/null 2>&1
}

reachable() {  # whether URL answers within PROBE_S seconds (no retries, no proxy waits)
  "$PYTHON" - "$1" "$PROBE_S" <<'PY' >/dev/null 2>&1
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()
except Exception:
    sys.exit(1)
PY
}

torch_plan() {  # one line: "cpu-index URL", or "default: why"
  if [[ "$(uname -s)" != Linux ]]; then
    echo "default: not Linux (PyPI's torch wheels are the CPU build there)"
  elif has_nvidia_gpu; then
    echo "default: an NVIDIA GPU is present (PyPI's Linux wheel is the CUDA build)"
  elif reachable "$CPU_INDEX/torch/"; then
    echo "cpu-index $CPU_INDEX"
  else
    echo "default: PyTorch's CPU index did not answer within ${PROBE_S}s"
  fi
}

if [[ "${1:-}" == --torch-plan ]]; then
  torch_plan
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  plan=$(torch_plan)
  echo "torch $TORCH_VERSION: $plan"
  if [[ "$plan" == cpu-index* ]] &&
    .venv/bin/pip install -q --index-url "$CPU_INDEX" "torch==$TORCH_VERSION"; then
    :
  else
    # GPU users: install the CUDA build of torch you want into .venv before running this.
    .venv/bin/pip install -q "torch==$TORCH_VERSION"
  fi
fi
.venv/bin/pip install -q -r "${1:-requirements.txt}"
# This workplace keeps an offline copy of the GPT-2 tokenizer beside the project.
if [[ -z "${TIKTOKEN_CACHE_DIR:-}" && -d ../shared/data/tiktoken_cache ]]; then
  echo "export TIKTOKEN_CACHE_DIR=$(cd ../shared/data/tiktoken_cache && pwd)" > .venv/offline-env
fi
