# make fuzz  — set up on first use, then fuzz the default target on embedded SQLite
# make test  — set up on first use, then run the test suite but its slow tests (in minutes)
# make test-all — the whole suite, slow tests included (make test-slow: those alone)
# make test-oldest — the catalog's quality tests on the oldest supported stack
#              (constraints/oldest.txt: Flask 2.0, SQLAlchemy 1.4, Flask-SQLAlchemy 2.5)
# make matrix — the target on every database and isolation level
# make soak  — fuzz unattended for DURATION seconds; writes junit.xml, report.html, JSON
# make golden — rewrite the golden texts of findings (tests/golden), then review the diff
# make bench — the controlled search against stress, then a first try (init, then its spec)
#              of the app-shaped targets (FIRSTTRY=--quick: microblog and demo), then
#              what reading a trace's statements costs (bench.sqlread: old regex reader,
#              sqlglot, the compiled statement, Step.access), then a 67-endpoint target at
#              -n 500 (bench.scale: first line, plan, peak memory, races, SIGTERM/SIGINT)
# make precision — every fixed twin of the catalog, 1000 examples on SQLite and 300 on
#              MariaDB and PostgreSQL, two searches at once (issue 19); UNTIL=HH:MM (UTC)
#              bounds it, ARGS= passes options to python -m bench.precision
# TARGET=, DB=, EXAMPLES=, SEED=, DURATION=, FIRSTTRY= pass through.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
OLDEST := .venv-oldest
OLDEST_STAMP := $(OLDEST)/.installed-$(shell cat pyproject.toml constraints/oldest.txt | cksum | cut -d' ' -f1)

TARGET ?= targets.profile:buggy
DB ?= sqlite
EXAMPLES ?= 200
SEED ?=
DURATION ?= 600
ARGS ?=

FIRSTTRY ?= --quick

SEED_FLAG := $(if $(SEED),--seed $(SEED),)

UNTIL ?=

.PHONY: precision fuzz matrix test test-all test-slow test-oldest check golden soak bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

fuzz: $(STAMP)
	$(BIN)/fuzzer run $(TARGET) --db $(DB) --max-examples $(EXAMPLES) $(SEED_FLAG) $(ARGS)

matrix: $(STAMP)
	$(BIN)/fuzzer matrix $(TARGET) --max-examples $(EXAMPLES) $(SEED_FLAG) $(ARGS)

soak: $(STAMP)
	$(BIN)/fuzzer soak $(TARGET) --db $(DB) --duration $(DURATION) $(SEED_FLAG) $(ARGS)

# make test: the suite but the slow tests (`@pytest.mark.slow`), on every core, each test
# stopped after TIMEOUT seconds; make test-all: everything; make test-slow: the slow tests
# alone (CI runs make test, then make test-slow). Tests of one xdist_group share a worker.
JOBS ?= auto
TIMEOUT ?= 600
PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --timeout $(TIMEOUT)

test: $(STAMP)
	$(PYTEST) -m "not slow" $(ARGS)

test-all: $(STAMP)
	$(PYTEST) $(ARGS)

test-slow: $(STAMP)
	$(PYTEST) -m slow $(ARGS)

# The oldest stack: compat's tests; the catalog targets written in the style SQLAlchemy
# 1.4 and Flask-SQLAlchemy 2.5 run (profile, stock, tags), on SQLite and MariaDB (a server
# that is down skips with its reason); `fuzzer init` on apps with binds and OpenAPI.
# Flask-SQLAlchemy 2.5 reads Flask 2.2's deprecated _app_ctx_stack: one warning filter.
OLDEST_TESTS ?= tests/test_compat.py tests/test_catalog.py tests/test_init.py
OLDEST_SELECT ?= compat or ((profile or stock or tags) and not postgres) or bind or openapi

$(OLDEST_STAMP): pyproject.toml constraints/oldest.txt
	@test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet -c constraints/oldest.txt -e . 'pytest>=8'
	@rm -f $(OLDEST)/.installed-*
	@touch $@

test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/bin/python -m pytest -W ignore::DeprecationWarning $(OLDEST_TESTS) \
		-k '$(OLDEST_SELECT)' $(ARGS)

golden: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_golden.py --update-golden
	@git diff --stat -- tests/golden; echo "review the text with: git diff -- tests/golden"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(OLDEST) .fuzzer .pytest_cache .mypy_cache .ruff_cache reports/*/

precision: $(STAMP)
	$(BIN)/python -m bench.precision $(if $(UNTIL),--until $(UNTIL),) $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.firsttry $(FIRSTTRY)
	$(BIN)/python -m bench.sqlread
	$(BIN)/python -m bench.scale
