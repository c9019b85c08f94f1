# Two commands do all the set-up: `make dev` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install dev demo test bench stack-up stack-down stack-status clean

# (Re)install when pyproject.toml changes; the stamp keeps `make test` fast afterwards.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

# The browser test (coin_platform_tests/e2e) drives Debian's Chromium; install it when missing.
test: install
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/pytest

# Each benchmark prints one JSON object; results also land in bench/results/ (git-ignored).
bench: install
	mkdir -p bench/results
	$(BIN)/python bench/indicators.py | tee bench/results/indicators.json
	$(BIN)/python bench/hotstore.py | tee bench/results/hotstore.json
	$(BIN)/python bench/loader.py --json-out bench/results/loader.json
	$(BIN)/python bench/ingest.py --json-out bench/results/ingest.json
	$(BIN)/python bench/backtest.py --json-out bench/results/backtest.json
	$(BIN)/python bench/latency.py --json-out bench/results/latency.json
	$(BIN)/python bench/backtest_report.py --json-out bench/results/backtest_report.json
	$(BIN)/python bench/decision_path.py --json-out bench/results/decision_path.json
	$(BIN)/python bench/api.py --json-out bench/results/api.json
	$(BIN)/python bench/warehouse.py --json-out bench/results/warehouse.json
	$(BIN)/python bench/dbt_build.py --json-out bench/results/dbt_build.json
	$(BIN)/python bench/models.py --json-out bench/results/models.json

stack-up: install .env
	$(BIN)/coin stack up

stack-down: install
	$(BIN)/coin stack down

stack-status: install
	$(BIN)/coin stack status

clean: stack-down
	rm -rf .coin
