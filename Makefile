# Two commands do all the set-up: `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo install compile dev system-deps browser-deps postgres-deps test lint server deploy automations bench clean

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

# bubblewrap isolates model-written code (docs/sandbox.md): installed when we can (root, or passwordless
# sudo, with apt-get). Without it the sandbox falls back to util-linux namespaces or refuses to run the
# code; the sandbox tests need it and fail saying so.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$sudo" ] || sudo -n true 2>/dev/null; }; then \
	    ($$sudo apt-get update -qq && $$sudo apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
	      || echo "warning: could not install bubblewrap (apt-get install bubblewrap); see docs/sandbox.md"; \
	  else echo "warning: bubblewrap (bwrap) not found: install it for full isolation (docs/sandbox.md)"; fi; }
	@! command -v bwrap >/dev/null 2>&1 || bwrap --unshare-all --die-with-parent --ro-bind / / true 2>/dev/null \
	  || echo "warning: bwrap cannot create namespaces here (docs/sandbox.md)"

# Headless Chromium for the HTML report's browser tests (Debian's package; nothing is downloaded by the tests).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	  ($$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium) >/dev/null 2>&1 \
	    || echo "warning: could not install chromium (apt-get install chromium): the HTML report tests need it"; }

# PostgreSQL for the work-pool tests on a PostgreSQL-backed Prefect server (Debian's package; the tests start
# their own throwaway cluster as the `postgres` user, tests/support/postgres.py).
postgres-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	  ($$sudo apt-get update -qq && $$sudo apt-get install -y -qq postgresql) >/dev/null 2>&1 \
	    || echo "warning: could not install postgresql (apt-get install postgresql): the PostgreSQL work-pool test needs it"; }

demo: install compile system-deps
	$(BIN)/benchgate run examples/quickstart.yaml --out out/quickstart

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Two xdist workers: most tests wait on servers and subprocesses, so two keep both cores busy; the tests
# that start Prefect workers or time limits run one at a time (tests/conftest.py:serial_with_workers),
# and those marked `alone` with no other test beside them (tests/conftest.py:machine; `machine.share()` ends that early).
# worksteal, not loadgroup/loadfile: those key tests by node id, and schemathesis gives one id to every
# operation of a fuzz test, so they silently ran one of four.
TEST_WORKERS ?= 2
test: dev compile system-deps browser-deps postgres-deps lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

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
