# From a fresh clone: `make run`, `make demo` or `make test`. Each creates .venv and installs
# the pinned requirements first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run demo test install install-dev system-deps migrate lint format bench clean

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

# Debian packages the tests need: Chromium (browser tests), libfaketime (the clock fault test)
# PostgreSQL's binaries (the database-outage test runs its own throwaway cluster) and libatomic1
# (Playwright's bundled Node.js links it; a minimal Debian lacks it).
# Installed with apt-get when running as root; otherwise one line says what to install.
system-deps:
	@missing=""; \
	[ -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing="$$missing chromium"; \
	ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	ldconfig -p 2>/dev/null | grep -q 'libatomic\.so\.1 ' || missing="$$missing libatomic1"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends $$missing >/dev/null \
	      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $$missing >/dev/null; }; \
	  else \
	    echo "make test needs:$$missing. Install with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

test: install-dev system-deps
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark (bench/all.py lists them), then every target with MET / NOT MET; the whole
# output is kept in .bench-logs/make-bench.txt. Chromium for the Connect latency benchmarks.
bench: install-dev system-deps
	$(BIN)/python bench/all.py

clean:
	rm -rf $(VENV) .pytest_cache staticfiles .test-db-*.sqlite3* .celerybeat-schedule* .bench-logs
