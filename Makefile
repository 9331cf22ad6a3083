# The two commands of the README: `make demo` (run the auditor locally) and `make test` (all checks).
# Each sets itself up: a virtual environment with the pinned packages, and Azurite from npm for the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit setup bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.bin/azurite

setup: $(STAMP) node_modules/.bin/azurite

demo: $(STAMP)
	$(PY) -m shared.cli diff examples/lab/01-baseline/topology.json examples/lab/02-enable-gw2/topology.json
	$(PY) -m shared.cli diff examples/lab/02-enable-gw2/topology.json examples/lab/03-enable-gw1/topology.json
	$(PY) -m shared.cli pairs examples/lab/03-enable-gw1/topology.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_transit.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
