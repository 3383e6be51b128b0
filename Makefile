# Capability Neuron Lab — the two commands: `make run` and `make test`.
.PHONY: run test bench screenshot setup lm-eval

setup:
	bash scripts/setup.sh

# The optional lm-evaluation-harness extra (`python -m cnl_core lm-eval`, the Intervene tab's task field).
lm-eval:
	bash scripts/setup.sh lm-eval

run: setup
	.venv/bin/python dashboard.py

test:
	bash scripts/setup.sh dev
	.venv/bin/python -m pytest -q

bench: setup
	test bench/.env/.installed -nt bench/requirements.txt || { rm -rf bench/.env && \
		.venv/bin/pip install -q --target bench/.env --no-deps -r bench/requirements.txt && touch bench/.env/.installed; }
	.venv/bin/python -m bench

screenshot:
	bash scripts/setup.sh dev
	.venv/bin/python scripts/screenshot.py assets/screenshot.png
