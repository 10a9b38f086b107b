# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-ready
SYSTEM_STAMP := $(VENV)/.system-deps
EXTRAS ?= dev,embeddings,postgres

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test test-unit lint fmt model system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing gemma-service (llama-cpp-python compiles llama.cpp once, ~8 min on 2 cores; pip caches the wheel)"
	$(BIN)/python -m pip install --progress-bar on -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(MODEL_STAMP): $(STAMP)
	$(BIN)/gemma-service model prepare
	touch $(MODEL_STAMP)

# Debian packages the full test suite uses (PostgreSQL + pgvector, Chromium). Best effort: the
# tests that need them skip with a clear reason where they cannot be installed.
$(SYSTEM_STAMP): $(STAMP)
	-@bash scripts/install-system-deps.sh
	touch $(SYSTEM_STAMP)

model: $(MODEL_STAMP)
system-deps: $(SYSTEM_STAMP)

serve: $(MODEL_STAMP)
	$(BIN)/gemma-service serve

test: $(MODEL_STAMP) $(SYSTEM_STAMP)
	$(BIN)/python -m pytest -ra

test-unit: $(STAMP)
	$(BIN)/python -m pytest -ra tests/unit tests/api

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

bench: $(MODEL_STAMP)
	$(BIN)/gemma-service bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
