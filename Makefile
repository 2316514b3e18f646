# From a fresh clone: `make run`, `make demo` or `make test`. Each creates .venv and installs
# the pinned requirements first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run demo test install install-dev migrate lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python bin/dev.py

demo: migrate
	$(BIN)/python bin/dev.py --demo

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python bench/sandbox_latency.py
	$(BIN)/python bench/ccxt_compare.py
	$(BIN)/python bench/page_load.py
	$(BIN)/python bench/connect_latency.py
	$(BIN)/python bench/refresh_scale.py
	$(BIN)/python bench/refresh_scale.py --batch 20 --concurrency 24

clean:
	rm -rf $(VENV) .pytest_cache staticfiles .test-db-*.sqlite3* .celerybeat-schedule* .bench-logs
