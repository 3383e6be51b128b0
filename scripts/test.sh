#!/usr/bin/env bash
# The tests and the guard rails (scripts/lint.sh) side by side: `make test` and CI run this after scripts/setup.sh dev.
# Why side by side: the test workers leave about a quarter of two cores idle (start-ups, the browser, waits), and
# mypy's first run over cnl_core (about a minute, it reads torch's and transformers' own types) fits in that idle
# time instead of coming before the tests. Either one failing fails the run; the linters' output is printed after
# the tests' (in one block, not interleaved with them).
#   bash scripts/test.sh [pytest arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."
workers=${TEST_WORKERS:-2}
lint_log=$(mktemp)
trap 'rm -f "$lint_log"' EXIT
bash scripts/lint.sh >"$lint_log" 2>&1 &
lint_pid=$!
.venv/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
tests=$?
wait "$lint_pid"
lint=$?
echo "---- lint and types (scripts/lint.sh), run beside the tests ----"
cat "$lint_log"
[ "$lint" -eq 0 ] || echo "lint or types FAILED (exit $lint): the output above says where"
[ "$tests" -eq 0 ] || echo "tests FAILED (exit $tests)"
[ "$tests" -eq 0 ] && [ "$lint" -eq 0 ]
