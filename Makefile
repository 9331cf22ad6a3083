# The two commands of the README: `make demo` (run the auditor locally) and `make test` (all checks).
# Each sets itself up: a virtual environment with the pinned packages, and Azurite from npm for the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck infra-check setup bench clean lock chromium screenshot

# Installs exactly the hash-pinned lock: no resolution, nothing unlocked, every file checked against its hash.
# A changed lock rebuilds the venv from scratch, so a package dropped from the lock is gone from it too.
$(STAMP): requirements.txt requirements-dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.txt
	touch $(STAMP)

# Recompile the locks after changing a pin in requirements*.in (pip-tools in its own venv, from PyPI).
PIP_COMPILE := .venv-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
	--no-emit-find-links --index-url https://pypi.org/simple
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet "pip-tools==7.6.2")
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) -o requirements-checkov.txt requirements-checkov.in

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.bin/azurite

# Headless Chromium (Debian's package) for the report page's browser test; without it that test is skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	    >/dev/null 2>&1 || echo "note: chromium could not be installed with apt-get (root and a Debian package source \
	are needed); the report's browser test will be skipped"; }

setup: $(STAMP) node_modules/.bin/azurite chromium

demo: $(STAMP)
	@echo "== The article's lab, step 1: enable allowRemoteVnetTraffic on gateway 2 only"
	$(PY) -m shared.cli diff examples/lab/01-baseline/topology.json examples/lab/02-enable-gw2/topology.json
	@echo; echo "== Step 2: enable it on gateway 1 as well"
	$(PY) -m shared.cli diff examples/lab/02-enable-gw2/topology.json examples/lab/03-enable-gw1/topology.json
	@echo; echo "== Pairs after step 2 (hub-03 stays isolated)"
	$(PY) -m shared.cli pairs examples/lab/03-enable-gw1/topology.json
	@echo; echo "== The auditor (function entry points, local store) replaying the lab as Event Grid events"
	@store=$$(mktemp -d /tmp/er-transit-demo.XXXXXX) && \
	  $(PY) -m shared.cli replay examples/replay-lab --store $$store && \
	  $(PY) -m shared.cli audit verify --store $$store && \
	  echo && echo "== The report page: the lab after step 2, with the replay's audit log and the example policy" && \
	  $(PY) -m shared.cli report examples/lab/03-enable-gw1/topology.json --store $$store \
	    --policy examples/policy.yaml -o $$store/er-transit-report.html && \
	  echo && echo "== The audit log: who opened and closed hub-01 <-> hub-02, and its state now" && \
	  $(PY) -m shared.cli audit history hub-01 hub-02 --store $$store

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

infra-check:
	bash infra/checks/checkov.sh

test: setup lint typecheck infra-check
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_transit.py
	$(PY) benchmarks/bench_auditor.py --repeat 3
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_audit_query.py

# The README's picture of the lab's report (needs chromium: `make chromium`).
screenshot: $(STAMP) chromium
	$(PY) scripts/headless_chromium.py lab-screenshot docs/report-lab.png

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
