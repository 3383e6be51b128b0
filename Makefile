# Capability Neuron Lab — the two commands: `make run` and `make test`.
.PHONY: run test lint bench screenshot setup lm-eval

setup:
	bash scripts/setup.sh

# The optional lm-evaluation-harness extra (`python -m cnl_core lm-eval`, the Intervene tab's task field).
lm-eval:
	bash scripts/setup.sh lm-eval

run: setup
	.venv/bin/python dashboard.py

# Two test processes (pytest-xdist; a file stays on one), one thread each: on 2 cores about 1.4x faster than one
# process with two threads (Python, tokenizers and the CLI's start-ups do not use both cores). Lint and types
# (scripts/lint.sh: ruff check and format, mypy cnl_core) run beside the tests, in their idle time (scripts/test.sh).
TEST_WORKERS ?= 2
test:
	bash scripts/setup.sh dev
	TEST_WORKERS=$(TEST_WORKERS) bash scripts/test.sh

lint:
	bash scripts/lint.sh

bench: setup
	test bench/.env/.installed -nt bench/requirements.txt || { rm -rf bench/.env && \
		.venv/bin/pip install -q --target bench/.env --no-deps -r bench/requirements.txt && touch bench/.env/.installed; }
	.venv/bin/python -m bench

screenshot:
	bash scripts/setup.sh dev
	.venv/bin/python scripts/screenshot.py assets/screenshot.png
