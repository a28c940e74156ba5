# Kotak — `make run` to use it, `make test` to check it. See README.md.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# The first Python 3.12+ on PATH, else one that pyenv installed but did not put on PATH.
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format install install-test system-deps clean bench-sync bench-headers bench-live \
	bench-web bench-load bench-search

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Kotak needs Python 3.12 or newer (python3.12 not found)."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/.installed

## Start Kotak on http://$(HOST):$(PORT): web server, Celery worker and beat. Ctrl-C stops all.
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_admin
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) scripts/run

## Everything the tests need (Debian packages, Python packages), then lint and the suite on
## SQLite and PostgreSQL.
test: system-deps install
	scripts/test

system-deps:
	@scripts/system-deps

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info

# Benchmarks talk to their own Dovecot on loopback, which Kotak refuses by default (SSRF).
BENCH_ENV = OUTBOUND_ALLOWED_NETWORKS=127.0.0.0/8 OUTBOUND_ALLOWED_PORTS='*'

## Benchmarks print figures; they assert nothing. BENCH_MESSAGES=20000 for a quick run.
bench-sync: system-deps install
	$(BENCH_ENV) $(BIN)/python bench/sync.py

## Hostile header blocks (1 MB Subjects, 5,000 recipients) against ordinary mail: time, memory.
bench-headers: system-deps install
	$(BENCH_ENV) $(BIN)/python bench/headers.py

## Live updates: browser latency against a bare IDLE baseline, watcher and stream costs.
bench-live: system-deps install
	$(BENCH_ENV) $(BIN)/python bench/live.py

## A 100,000-message folder: list pages and opening a message, server time and a real browser's
## first paint, on SQLite and PostgreSQL (BENCH_WEB_DB=sqlite or postgres for one).
bench-web: system-deps install
	$(BIN)/python bench/web.py --db $(or $(BENCH_WEB_DB),both)

## Search over 100,000 messages: p50/p95 of a mix of queries, the index build and what the index
## costs the sync's writes, on SQLite and PostgreSQL (BENCH_SEARCH_DB=sqlite or postgres for one).
bench-search: system-deps install
	$(BIN)/python bench/search.py --db $(or $(BENCH_SEARCH_DB),both)

## 50 people clicking at once on one uvicorn process while new mail is synced: p50/p95/p99 per
## request kind and the errors. BENCH_USERS, BENCH_SECONDS, BENCH_THINK (see bench/load.py).
bench-load: system-deps install
	$(BENCH_ENV) $(BIN)/python bench/load.py
