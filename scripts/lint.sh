#!/usr/bin/env bash
# Guard rails (issue #35): lint and type-check, run by `make test` (and so by CI) and by pre-commit.
#   bash scripts/lint.sh
# ruff: rules E, F, W, I, UP, B at 120 columns and ruff's formatting, over the whole repository; mypy: cnl_core with check_untyped_defs.
# Settings and the pending lists (files being edited on other branches) are in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
echo "lint: ruff check . (E, F, W, I, UP, B; line length 120; settings in pyproject.toml)"
"$BIN/ruff" check .
echo "lint: ruff format --check . (ruff format . rewrites what it lists)"
"$BIN/ruff" format --check . >/dev/null || { "$BIN/ruff" format --check .; exit 1; }
echo "lint: mypy cnl_core (check_untyped_defs; settings in pyproject.toml)"
"$BIN/mypy" cnl_core
