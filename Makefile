# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Fetch MovieLens-100k, train the baselines, print the results table.
demo: $(STAMP)
	$(BIN)/primetime demo

## The full test suite (integration tests need PostgreSQL/Redis/network in CI).
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only (no network, no services).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

## Quick benchmarks (the 25M-row ones are run by hand: see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_synthetic.py --preset small

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
