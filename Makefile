# The README's verbs. Every target installs what it needs into .venv (and .tools/ for the SAM CLI).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
# checkov in its own venv: it pins boto3, networkx and packaging older than the project's. Pinned: a new release
# adds checks, and a green `make test` must not turn red overnight.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
# Two workers (the machine has two cores): the IAM judge gathers what every worker saw.
PYTEST_ARGS ?= -n 2

.PHONY: help install lint format test test-fast build deploy dev bench clean browser-deps node-deps contracts contracts-release \
	codat-webhooks
NODE_TOOLS := tools/asyncapi

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@python=$$(scripts/find-python) && echo "creating $(VENV) with $$python" && $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the project (editable) and its dev tools

lint: install $(CHECKOV) ## ruff, mypy, cfn-lint and checkov (0 failed; skips next to their resource) on the template
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	@# Offline and deterministic: no guideline download, no update check, no API key, no config file's say.
	env -u BC_API_KEY -u CKV_SKIP_CHECK -u CKV_CHECK -u CKV_FRAMEWORK CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
		BC_SKIP_MAPPING=TRUE $(CHECKOV) -f template.yaml --framework cloudformation --skip-download --compact --quiet

# A mainstream OpenAPI client generator, in its own venv (pinned): the e2e test generates a client and runs the journey.
OPENAPI_CLIENT_VERSION := 0.29.1
OPENAPI_CLIENT := .tools/openapi-python-client/bin/openapi-python-client
$(OPENAPI_CLIENT):
	@python=$$(scripts/find-python) && $$python -m venv .tools/openapi-python-client
	.tools/openapi-python-client/bin/pip install --quiet openapi-python-client==$(OPENAPI_CLIENT_VERSION)

$(CHECKOV):
	@python=$$(scripts/find-python) && $$python -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

browser-deps: ## Chromium from Debian for the browser tests (apt-get, as root; quiet when already there)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "browser-deps: chromium is missing and cannot be installed here (needs root): the browser tests skip (fail under CI=true)"

# The AsyncAPI Initiative's parser, for the contract test (npm registry; locked by package-lock.json).
$(NODE_TOOLS)/node_modules/.installed: $(NODE_TOOLS)/package-lock.json
	@command -v npm >/dev/null || { echo "node-deps: npm is missing: the AsyncAPI parser test skips (fails under CI=true)"; exit 0; } \
		&& npm ci --prefix $(NODE_TOOLS) --silent --no-audit --no-fund && touch $@

node-deps: $(NODE_TOOLS)/node_modules/.installed ## the AsyncAPI parser (npm) the contract test validates with

contracts: install ## regenerate contracts/ (AsyncAPI, a JSON Schema per event) and docs/events.md from the code
	$(PY) -m consent_dev.contracts write

contracts-release: install ## keep today's event schemas as released (bump CONTRACT_VERSION first)
	$(PY) -m consent_dev.contracts release

test: lint browser-deps node-deps $(OPENAPI_CLIENT) ## lint, then the whole test suite, offline
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install node-deps $(OPENAPI_CLIENT) ## the test suite without lint
	$(BIN)/pytest $(PYTEST_ARGS)

TIERS := unit integration contract template build e2e browser fuzz
.PHONY: $(addprefix test-,$(TIERS))
test-tier: ## make test-unit, test-integration, test-contract, test-template, test-build, test-e2e, test-browser, test-fuzz
	@echo "one tier of the suite: make $(addprefix test-,$(TIERS))"
$(addprefix test-,$(TIERS)): test-%: install node-deps
	$(BIN)/pytest -m $* $(PYTEST_ARGS)

# Not part of `make test`: minutes, not seconds. MUTATION_ARGS=--max-children N (default: one per core).
MUTATION_ARGS ?=
.PHONY: mutation
mutation: install ## mutation score of the verifier, the timeline and journeys (mutmut; docs/mutation.md), ≥ 95% each
	$(PY) scripts/mutation $(MUTATION_ARGS)

$(SAM): 
	@python=$$(scripts/find-python) && $$python -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

ARCHITECTURE ?= arm64
build: install $(SAM) ## sam build: the layer and every function for ARCHITECTURE (arm64), into .aws-sam/
	PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 LAYER_ARCHITECTURE=$(ARCHITECTURE) $(SAM) build \
		--template-file template.yaml --parameter-overrides Architecture=$(ARCHITECTURE)
	$(PY) scripts/check-layer-arch .aws-sam/build/ConsentLayer $(ARCHITECTURE)

.PHONY: events
events: install ## regenerate events/ (webhook samples signed for 5 minutes); STACK=<name>: with that stack's secret
	$(PY) scripts/make-events $(if $(STACK),--stack $(STACK))

# The first deploy asks for every parameter (`sam deploy --guided`) and can save them; then ENV=<section> uses a
# section of samconfig.toml (staging, production).
ENV ?=
deploy: build ## sam deploy: the first time guided, then ENV=staging|production (samconfig.toml's sections)
	@if [ -z "$(ENV)" ]; then \
		SAM_CLI_TELEMETRY=0 $(SAM) deploy --guided --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND; \
	else \
		SAM_CLI_TELEMETRY=0 $(SAM) deploy --config-env $(ENV); \
	fi

PORT ?= 3000
dev: install ## the whole product on 127.0.0.1: the API on PORT (3000), the Codat simulator on PORT+1
	$(PY) -m consent_dev.devserver --port $(PORT)

BENCH_ARGS ?=
bench: install $(SAM) ## performance beside its floors (cold start, warm, calls, scale, layer): table + .bench/*.json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) bench/run.py --sam $(SAM) $(BENCH_ARGS)

# WEBHOOK_URL=… (or STACK=<deployed stack>) CODAT_API_KEY=… [CODAT_BASE_URL=…]; CHECK=1 only reports (exit 1 unless
# healthy). The API key is read from the environment only, never printed.
codat-webhooks: install ## register the webhook URL with Codat's webhook consumers, idempotently (CHECK=1: only check)
	$(PY) -m consent_dev.codat_webhook_setup $(if $(CHECK),--check)

clean: ## remove build output and caches (keeps .venv)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
