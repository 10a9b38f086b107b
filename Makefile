# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.llama-cpp
MODEL_STAMP := $(VENV)/.model-ready
SYSTEM_STAMP := $(VENV)/.system-deps
EXTRAS ?= dev,embeddings,postgres,test-models
# LLAMA_CUDA=1 builds llama.cpp's CUDA backend too (needs the CUDA toolkit).
LLAMA_BUILD_FLAGS := $(if $(LLAMA_CUDA),--cuda)

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test test-unit lint fmt model system-deps llama-cpp bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python, compiled once with runtime CPU dispatch and kept in ~/.cache/gemma-service:
# the same cached wheel runs on any x86-64 CPU (scripts/build_llama_cpp.py).
$(LLAMA_STAMP): scripts/build_llama_cpp.py scripts/llama-cpp-install-cpu-variants.cmake | $(BIN)/python
	$(BIN)/python scripts/build_llama_cpp.py --python $(BIN)/python $(LLAMA_BUILD_FLAGS)
	touch $@

$(STAMP): pyproject.toml $(LLAMA_STAMP)
	@echo "Installing gemma-service and its dependencies"
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

llama-cpp: $(LLAMA_STAMP)
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
