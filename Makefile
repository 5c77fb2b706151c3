# The only entry points: CI runs `make test` through .ci/run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=9000 HOST=0.0.0.0 DATA_DIR=/srv/jobcast`
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./.jobcast

.PHONY: install run test check lint bench clean web
# The built UI; remade when a source of it changed (scripts/web.sh runs `npm ci` only when
# package-lock.json did).
WEB_STAMP := src/jobcast/web/static/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/docs.html web/build.mjs \
	web/package.json web/package-lock.json web/tsconfig.json scripts/web.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(WEB_STAMP): $(WEB_SOURCES)
	bash scripts/web.sh

web: $(WEB_STAMP)

run: $(STAMP) $(WEB_STAMP)
	$(BIN)/jobcast serve --host '$(HOST)' --port '$(PORT)' --data-dir '$(DATA_DIR)'

# tools.sh first: it installs npm (for the UI's build) and chromium (for its tests) if missing.
test: $(STAMP)
	bash scripts/tools.sh
	bash scripts/node-tests.sh
	$(MAKE) --no-print-directory web
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

lint: check

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/jobcast/web/static
