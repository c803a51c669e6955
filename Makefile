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

.PHONY: install tools browser run test check build lint openapi cost bench clean

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

run: install
	@echo "Demo API key: demo-key"
	@echo "Try: curl -H 'Authorization: Bearer demo-key' 'http://$(HOST):$(PORT)/api/goals-conversions?results_per_page=10'"
	@echo "API docs: http://$(HOST):$(PORT)/docs"
	$(BIN)/goals-conversions serve --host $(HOST) --port $(PORT) --seed seeds/demo.json $(if $(CORS_ORIGINS),--cors-origin $(CORS_ORIGINS))

# Two pytest workers (xdist), a test module each at a time: the machines have two cores.
# Schemathesis makes a test of each operation at collection, which xdist's workers cannot share:
# its suite (marked `serial`) runs after, in one process.
WORKERS ?= 2

test: install lint check browser
	$(BIN)/pytest -n $(WORKERS) --dist loadfile -m "not serial"
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
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache
