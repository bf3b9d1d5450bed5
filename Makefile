# Kith — `make run` serves a node, `make test` runs every check. Both create .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test lint typecheck unit bench vectors clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed-run

## Serve a node on 127.0.0.1:7447 from ./kith-data (created on first use). Override with ARGS="--port 8000".
run: $(VENV)/.installed-run
	$(BIN)/kith serve $(ARGS)

## ruff, mypy --strict, then the whole pytest suite.
test: lint typecheck unit

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/pytest

## Benchmarks print one JSON row per measurement.
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

## Regenerate spec/vectors from the reference implementation (review the diff before committing).
vectors: $(VENV)/.installed-test
	$(BIN)/python -m tests.vectors.generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
