# llm-api: `make run` starts the gateway, `make test` runs lint and the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install install-dev run test test-sdk lint format services bench bench-compare clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled at install, as the Docker image does (UV_COMPILE_BYTECODE=1): without it, and with
# PYTHONDONTWRITEBYTECODE set, every process compiles its imports from source (~1.5 s per gateway start),
# and the gunicorn master keeps what the compiler freed as holes in its heap, which every worker maps:
# ~9 MiB of a worker's idle RSS (bench.memory). Only new or changed files are compiled on a later sync.
install: $(UV)
	$(UV) sync --frozen --no-dev --inexact --quiet --compile-bytecode

install-dev: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode

run: install
	@bash scripts/run.sh

services:
	@bash scripts/ensure-services.sh
	@bash scripts/ensure-claude-code.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-dev services lint
	$(BIN)/pytest -q

# The whole suite with every test gateway on the official SDK clients (LLM_HTTP_CLIENT=sdk).
test-sdk: install-dev services
	TEST_LLM_HTTP_CLIENT=sdk $(BIN)/pytest -q

bench: install-dev
	@bash bench/run.sh

bench-compare: install-dev
	@bash bench/run.sh --compare

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
