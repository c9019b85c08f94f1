# Two commands do all the set-up: `make dev` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install dev demo test bench lock stack-up stack-down stack-status clean

# Every install takes its versions from this file (pip constraints): a fresh clone, CI and
# deploy/Dockerfile resolve the same set. `make lock` refreshes it.
CONSTRAINTS := constraints.txt

# (Re)install when pyproject.toml or the constraints change; the stamp keeps `make test` fast afterwards.
$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

.env:
	cp .env.example .env

# Local stack + Dagster UI on 127.0.0.1:3000 + the HTTP API on 127.0.0.1:8800; Ctrl-C stops all of it.
# The code location prepares the dbt manifest itself (`dbt parse` when missing or older than the project).
dev: install .env
	$(BIN)/coin dev

# `make dev` offline: replay server, the last days backfilled, live schedules on.
demo: install .env
	$(BIN)/coin dev --demo

# The browser test (coin_platform_tests/e2e) drives Debian's Chromium, the PostgreSQL tests
# (coin_platform_tests/fixtures/postgres.py) Debian's PostgreSQL server; install them when missing.
# The tests start their own cluster: the package is told not to create (and start) a system one.
test: install
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || (mkdir -p /etc/postgresql-common \
	  && echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf \
	  && apt-get update -qq && apt-get install -y -qq postgresql)
	$(BIN)/pytest

# Each benchmark prints one JSON object; results also land in bench/results/ (git-ignored).
bench: install
	mkdir -p bench/results
	$(BIN)/python bench/indicators.py | tee bench/results/indicators.json
	$(BIN)/python bench/hotstore.py | tee bench/results/hotstore.json
	$(BIN)/python bench/loader.py --json-out bench/results/loader.json
	$(BIN)/python bench/ingest.py --json-out bench/results/ingest.json
	$(BIN)/python bench/live_ingest.py --json-out bench/results/live_ingest.json
	$(BIN)/python bench/archive.py --json-out bench/results/archive.json
	$(BIN)/python bench/universe.py --json-out bench/results/universe.json
	$(BIN)/python bench/backtest.py --json-out bench/results/backtest.json
	$(BIN)/python bench/latency.py --json-out bench/results/latency.json
	$(BIN)/python bench/backtest_report.py --json-out bench/results/backtest_report.json
	$(BIN)/python bench/decision_path.py --json-out bench/results/decision_path.json
	$(BIN)/python bench/api.py --json-out bench/results/api.json
	$(BIN)/python bench/warehouse.py --json-out bench/results/warehouse.json
	$(BIN)/python bench/dbt_build.py --json-out bench/results/dbt_build.json
	$(BIN)/python bench/models.py --json-out bench/results/models.json
	$(BIN)/python bench/import_weight.py --json-out bench/results/import_weight.json

# Refresh constraints.txt: the newest versions pyproject.toml allows (base and every extra), resolved by
# pip in a throwaway venv and frozen. Commit the result; the next `make dev`/`make test` installs it.
lock:
	set -e; venv=$$(mktemp -d); trap 'rm -rf "$$venv"' EXIT; \
	$(PYTHON) -m venv "$$venv"; \
	"$$venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$venv/bin/python" -m pip install --quiet -e '.[dev]'; \
	{ echo "# pip constraints for every install of coin_platform; refreshed by \`make lock\` (do not edit by hand)."; \
	  "$$venv/bin/python" -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new; \
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

stack-up: install .env
	$(BIN)/coin stack up

stack-down: install
	$(BIN)/coin stack down

stack-status: install
	$(BIN)/coin stack status

clean: stack-down
	rm -rf .coin
