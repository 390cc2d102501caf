# The two commands: `make up` runs the platform, `make test` runs the tests. Both install what is
# missing first (Debian packages, the Python venv with pinned deps, the Kafka jars), so they work on a
# fresh machine. Everything built or downloaded lands in .venv/ or .run/ (both git-ignored).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ESPORTS := $(BIN)/esports
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests wait on services, so two share 2 cores well. A module (or a
# package sharing one platform) is one unit, the slowest first (tests/conftest.py); 0 runs them all in
# this process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile
# `make up BROKERS=3`: a three-node local Kafka cluster (the setting ESPORTS_KAFKA__BROKERS, for every
# service `make` starts; export it in your shell for later `esports` commands too).
ifdef BROKERS
export ESPORTS_KAFKA__BROKERS := $(BROKERS)
endif
# `make up OBSERVE=1`: a local Prometheus too, scraping every service and evaluating the alert rules of
# infra/observability/ (the setting ESPORTS_PROMETHEUS__ENABLED; `make down` stops it with the rest).
ifdef OBSERVE
export ESPORTS_PROMETHEUS__ENABLED := $(OBSERVE)
endif
# `make up SECURE=1`: Kafka over TLS + SASL/SCRAM with ACLs (each service its own user, writing only
# its catalogue topics) and PostgreSQL with ssl=on (clients: verify-full), certificates from a local CA
# under .run/tls/, and a least-privilege PostgreSQL role per service (the settings ESPORTS_KAFKA__SECURE,
# ESPORTS_POSTGRES__SSL and ESPORTS_POSTGRES__SERVICE_ROLES; export them for later `esports` commands
# too). Its data lives apart, in .run/secure/ (read models built from the plaintext broker's log would
# not match the secure broker's): `make down SECURE=1` stops it.
ifdef SECURE
export ESPORTS_KAFKA__SECURE := $(SECURE)
export ESPORTS_POSTGRES__SSL := $(SECURE)
export ESPORTS_POSTGRES__SERVICE_ROLES := $(SECURE)
export ESPORTS_STACK__RUN_DIR ?= $(CURDIR)/.run/secure
endif

.PHONY: help install up down status test test-unit lint bench chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## install what is missing: Debian packages, venv, Kafka jars
	@bash infra/local/install-system.sh
	@$(BIN)/python -m infra.stack jars
	@$(MAKE) -s web/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# hls.js for the pages, exactly as web/package-lock.json pins it (never committed, served by the API).
web/node_modules/.installed: web/package.json web/package-lock.json
	@cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

up: install ## start the whole platform with a demo live stream and print the URLs
	@$(ESPORTS) up

down: ## stop everything `make up` started
	@test -x $(ESPORTS) && $(ESPORTS) down || true

status: ## what runs where
	@$(ESPORTS) status

test: install lint ## lint, start the services the tests need, run every test
	@$(ESPORTS) infra up
	@$(ESPORTS) topics create >/dev/null
	@$(PYTEST) $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## only the tests that need no services
	@$(PYTEST) tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy events infra producers stream_processors projections edge_ws ingest_workers web

chaos: install ## a 10-minute chaos run on a private 3-broker platform (MINUTES=N to change), prints its table
	@$(BIN)/python -m tests.chaos --minutes $(or $(MINUTES),10)

bench: install ## run the benchmarks in bench/ (prints figures with their baselines)
	@$(ESPORTS) infra up
	@$(ESPORTS) bench

clean: down ## stop the stack and delete local data (.run/); keeps the venv
	rm -rf .run
