# Two commands do all the set-up: `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo install dev system-deps test lint server deploy bench clean

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

dev: $(VENV)/.dev-installed

# bubblewrap isolates model-written code; installed when we can (root on Debian/Ubuntu), else the sandbox warns.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || echo "warning: could not install bubblewrap"; \
	  else echo "warning: bubblewrap (bwrap) not found; install it for sandboxed code execution"; fi; }

demo: install system-deps
	$(BIN)/benchgate run examples/quickstart.yaml --out out/quickstart

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: dev system-deps lint
	$(BIN)/pytest -q

server: install
	$(BIN)/benchgate server

# With `make server` running: the pool, prefect.yaml's deployments, then a worker (Ctrl-C stops it).
POOL ?= benchgate
deploy: export PREFECT_API_URL ?= http://127.0.0.1:4200/api
deploy: install
	$(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 || $(BIN)/prefect work-pool create $(POOL) --type process
	$(BIN)/prefect --no-prompt deploy --all
	$(BIN)/prefect worker start --pool $(POOL) --limit 4

bench: dev
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out .benchgate .pytest_cache .ruff_cache
