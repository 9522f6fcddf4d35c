# The README's commands (`make up`, `make test`, `make test-all`) install what is missing and run.
# System packages come from apt-get (as root, or through sudo); Python packages go into .venv,
# every one the version pinned, with its hashes, in a lock under deploy/ (deploy/lock.sh).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: up down test test-all lint bench experiment faults system-deps browser-deps runtime venv \
	clean

up: system-deps runtime
	$(BIN)/authscale up $(ARGS)

down: runtime
	$(BIN)/authscale down

# After every change: lint, types, import contracts and every test but the `lab` ones (whole
# experiments, benches, load runs, fault scenarios, stacks the command line starts and breaks)
# the `compose` ones (Docker) and the `cluster` ones (the contract again on a Redis Cluster).
# pytest's exit code 5 (no test ran) fails it too.
test: system-deps venv lint
	$(BIN)/pytest -m "not lab and not compose and not cluster" $(ARGS)

# Everything `make test` runs, and the `lab`, `compose` and `cluster` tests too: what CI runs.
test-all: system-deps browser-deps venv lint
	$(BIN)/pytest $(ARGS)

# One replica per role, ping vs dashboard per variant (wrk on its own core); prints the ratios.
bench: system-deps venv
	$(BIN)/authscale bench $(ARGS)

# The replica-scaling experiment that docs/results/ was made with; writes results/<timestamp>/.
experiment: system-deps venv
	$(BIN)/authscale experiment $(ARGS)

# The fault scenarios under steady load (docs/faults.md); writes results/faults-<timestamp>/.
# BACKEND=compose runs each on a fresh compose project (needs Docker); local processes otherwise.
# SCENARIO=redis-outage (or any other) runs one scenario alone.
BACKEND ?= local
SCENARIO ?= faults
faults: system-deps venv
	$(BIN)/authscale experiment $(SCENARIO) --backend $(BACKEND) $(ARGS)

lint: venv
	$(BIN)/ruff check services tests loadtests
	$(BIN)/ruff format --check services tests loadtests
	$(BIN)/mypy
	$(BIN)/lint-imports

# nginx and redis-server for the local stack and the tests; wrk for `authscale bench`;
# python3-venv for the virtualenv.
system-deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && $(APT_INSTALL) $$missing; \
	fi

# Headless Chromium and its driver, for the browser page's test (tests/lab/stack/test_web.py).
browser-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && $(APT_INSTALL) $$missing; \
	fi

# What running the stack needs (`make up`), no test or lint tool: the product, its three
# servers and the lab extra, and the project itself, editable, built by the locked setuptools.
runtime: $(VENV)/.runtime

$(VENV)/.runtime: pyproject.toml deploy/lab-requirements.lock deploy/build-requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r deploy/lab-requirements.lock \
		-r deploy/build-requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# What the suite, lint and the experiments need on top: the dev and loadtest extras, locked at
# the same versions as the runtime. The tests run every role on Hypercorn, uvicorn and Granian.
venv: $(VENV)/.installed

$(VENV)/.installed: $(VENV)/.runtime deploy/dev-requirements.lock
	$(BIN)/pip install -q --require-hashes -r deploy/dev-requirements.lock
	touch $@

clean:
	rm -rf $(VENV) .authscale .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
