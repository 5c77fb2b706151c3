# The only entry points: CI runs `make test` through .ci/run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=9000 HOST=0.0.0.0 DATA_DIR=/srv/jobcast`
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./.jobcast

.PHONY: install run test check lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/jobcast serve --host '$(HOST)' --port '$(PORT)' --data-dir '$(DATA_DIR)'

test: $(STAMP)
	bash scripts/tools.sh
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

lint: check

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
