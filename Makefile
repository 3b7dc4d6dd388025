# Two commands do all the set-up: `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo install compile dev system-deps test-deps test lint server deploy automations bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

# pip compiles what it installs, but an editable install leaves our own modules as sources: compiled
# here (only what changed), as a wheel's install would, they are not compiled again by every process
# that imports them where the environment sets PYTHONDONTWRITEBYTECODE (a .pyc is still read then).
compile: install
	$(BIN)/python -m compileall -q benchgate flows tasks scorers deployments

dev: $(VENV)/.dev-installed

# Debian's packages, installed in one apt-get run when we can (root, or passwordless sudo): bubblewrap
# isolates model-written code (docs/sandbox.md; without it the sandbox falls back to util-linux namespaces
# or refuses to run the code); for the tests also headless Chromium, for the HTML report's browser tests
# (nothing is downloaded by the tests), and PostgreSQL, for the work-pool tests on a PostgreSQL-backed
# Prefect server (the tests start their own throwaway cluster as the `postgres` user,
# tests/support/postgres.py). A test that needs a package that is missing fails saying so.
system-deps: PACKAGES = bubblewrap
test-deps: PACKAGES = bubblewrap chromium postgresql
system-deps test-deps:
	@missing=$$(for package in $(PACKAGES); do case $$package in \
	  bubblewrap) command -v bwrap >/dev/null 2>&1 || echo bubblewrap;; \
	  chromium) command -v chromium >/dev/null 2>&1 || echo chromium;; \
	  postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql;; esac; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$sudo" ] || sudo -n true 2>/dev/null; }; then \
	    ($$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing) >/dev/null 2>&1 \
	      || echo "warning: could not install" $$missing "(apt-get install" $$missing")"; \
	  else echo "warning: not installed:" $$missing "(apt-get install" $$missing"; see docs/sandbox.md)"; fi; fi
	@! command -v bwrap >/dev/null 2>&1 || bwrap --unshare-all --die-with-parent --ro-bind / / true 2>/dev/null \
	  || echo "warning: bwrap cannot create namespaces here (docs/sandbox.md)"

demo: compile system-deps
	$(BIN)/benchgate run examples/quickstart.yaml --out out/quickstart

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Two xdist workers: most tests wait on servers and subprocesses, so two keep both cores busy; the tests
# that start Prefect workers or time limits run one at a time (tests/conftest.py:serial_with_workers),
# and those marked `alone` with no other test beside them (tests/conftest.py:machine; `machine.share()`
# ends that early). worksteal, not loadgroup/loadfile: those key tests by node id, and schemathesis
# gives one id to every operation of a fuzz test, so they silently ran one of four.
# On a new machine the Python packages and Debian's install side by side (one downloads and compiles,
# the other mostly unpacks), and mypy (a minute with no cache) runs beside the suite at the lowest
# priority, on the CPU the tests leave while they wait: either failing fails `make test`.
TEST_WORKERS ?= 2
test:
	$(MAKE) -j2 dev test-deps
	$(MAKE) compile
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@echo "$(BIN)/mypy (at nice 19, beside the suite; its report follows the suite's)"
	@nice -n 19 $(BIN)/mypy >$(VENV)/mypy.log 2>&1 & types=$$!; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal; tests=$$?; \
	wait $$types; typed=$$?; cat $(VENV)/mypy.log; \
	if [ $$tests -ne 0 ]; then exit $$tests; fi; exit $$typed

server: install
	$(BIN)/benchgate server

# With `make server` running: the pool, prefect.yaml's deployments, then a worker (Ctrl-C stops it).
POOL ?= benchgate
deploy: export PREFECT_API_URL ?= http://127.0.0.1:4200/api
deploy: install
	$(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 || $(BIN)/prefect work-pool create $(POOL) --type process
	$(BIN)/prefect --no-prompt deploy --all
	$(BIN)/prefect worker start --pool $(POOL) --limit 4

# With `make server` running and a Webhook block `benchgate-alerts` saved: deployments/automations.yaml.
automations: export PREFECT_API_URL ?= http://127.0.0.1:4200/api
automations: install
	$(BIN)/python -m deployments.automations

bench: dev compile
	for b in $(filter-out bench/record_import_fixtures.py,$(wildcard bench/*.py)); do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out .benchgate .pytest_cache .ruff_cache
