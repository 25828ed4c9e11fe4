# The README's commands. `make demo` and `make test` set up the venv themselves when missing.
VENV    := .venv
BIN     := $(CURDIR)/$(VENV)/bin
PYTHON  ?= python3
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test soak spark dev app serve status lint clean

setup: $(VENV)/.installed

# torch first, from the machine's CPU build: a plain `torch` requirement would pull a
# multi-GB CUDA build. uv then resolves the rest in seconds and keeps that torch.
# --compile-bytecode writes every package's .pyc once, here: where PYTHONDONTWRITEBYTECODE is
# set (it is on our machines) Python otherwise recompiles each imported module from source in
# every process, which is 2-3 s of start-up for each dbt, Dagster or CLI invocation.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	cd dbt_project && $(BIN)/dbt parse --quiet --profiles-dir .
	touch $@

demo: setup
	$(BIN)/sentinance demo

# two workers (pytest-xdist), a test file per worker at a time so its module fixtures (demo
# homes, dbt and Spark builds) are built once; the Spark tests included (Java 17+)
test: setup
	$(BIN)/pytest -n 2 --dist loadfile

# `sentinance serve` live against local fakes for about eight minutes (tests/test_soak.py)
soak: setup
	$(BIN)/pytest -m soak

# only the Spark tests (also in `make test`): the marts, a detection backfill and a backtest on
# Apache Spark (local PySpark and a local Spark Connect server) must equal DuckDB's / one machine's
spark: setup
	$(BIN)/pytest -m spark

dev: setup
	$(BIN)/sentinance dev

app: setup
	$(BIN)/sentinance app

# the service: Dagster daemon + UI, watch loop and app, supervised (docs/operations.md)
serve: setup
	$(BIN)/sentinance serve

status: setup
	$(BIN)/sentinance status

# what CI checks before the tests (also a pre-commit hook set: .pre-commit-config.yaml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf .sentinance dbt_project/target
