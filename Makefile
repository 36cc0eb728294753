# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast test-embedded lint vendor-htmx services clean

$(VENV)/.ok-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "python3 -m venv failed: installing python3-venv from Debian's packages"; \
			rm -rf $(VENV) && apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
			$(PYTHON) -m venv $(VENV); \
		else echo "python3 -m venv failed: on Debian, install python3-venv"; exit 1; fi; }
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.ok-run: $(VENV)/.ok-python pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.ok-dev: $(VENV)/.ok-run
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.ok-run
	$(PY) -m kws_admin.demo

services:
	bash deploy/ensure-services.sh

# The tests use the machine's PostgreSQL and Redis (deploy/ensure-services.sh);
# system tests start their own per-node servers beside them.
TEST_ENV := KWS_DATABASE_URL=postgres://kws:kws@127.0.0.1:5432/kws \
	KWS_BROKER_URL=redis://127.0.0.1:6379/15 KWS_DATA_DIR=$(CURDIR)/var/test

# The whole suite on PostgreSQL and Redis, then the fast tests again on the embedded
# default (SQLite and the filesystem broker), which is what every newcomer runs.
# The fast tests wait on sockets and subprocesses more than they compute, so they run
# in parallel (pytest-xdist, one test database per worker). The system and browser
# tests spend most of their time waiting for real clusters (detection windows,
# convergence), so two run side by side, except those marked `alone`: they assert
# bounds in seconds (failover, detection, restarts, the PBX's rate) or load the machine
# themselves (a hundred simulated devices), and run after, one at a time.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; [ $$n -lt 2 ] && n=2; echo $$n)
FAST := -m "not system and not browser" -n $(WORKERS)
SYSTEM := -m "(system or browser) and not alone" -n 2 --durations=15
ALONE := -m "alone" --durations=15

test: $(VENV)/.ok-dev services
	$(VENV)/bin/lint-imports --no-logo --no-cache
	$(TEST_ENV) $(PY) -m pytest $(FAST)
	$(TEST_ENV) $(PY) -m pytest $(SYSTEM)
	$(TEST_ENV) $(PY) -m pytest $(ALONE)
	$(MAKE) --no-print-directory test-embedded

test-embedded: $(VENV)/.ok-dev
	KWS_DATA_DIR=$(CURDIR)/var/test-embedded $(PY) -m pytest -q $(FAST)

test-fast: $(VENV)/.ok-dev
	$(TEST_ENV) $(PY) -m pytest $(FAST)

lint: $(VENV)/.ok-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo --no-cache

# htmx is vendored from its npm package, never loaded from a CDN.
vendor-htmx:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent htmx.org@2.0.11 && tar xzf htmx.org-2.0.11.tgz && \
		cp package/dist/htmx.min.js package/LICENSE $(CURDIR)/static/vendor/htmx/ && rm -r $$tmp

clean:
	rm -rf var
