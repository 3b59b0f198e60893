# make fuzz  — set up on first use, then fuzz the default target on embedded SQLite
# make test  — set up on first use, then run the test suite
# make matrix — the target on every database and isolation level
# make soak  — fuzz unattended for DURATION seconds; writes junit.xml, report.html, JSON
# make golden — rewrite the golden texts of findings (tests/golden), then review the diff
# TARGET=, DB=, EXAMPLES=, SEED=, DURATION= pass through.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

TARGET ?= targets.profile:buggy
DB ?= sqlite
EXAMPLES ?= 200
SEED ?=
DURATION ?= 600
ARGS ?=

SEED_FLAG := $(if $(SEED),--seed $(SEED),)

.PHONY: fuzz matrix test check golden soak bench setup clean

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

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

golden: $(STAMP)
	UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py
	@git diff --stat -- tests/golden; echo "review the text with: git diff -- tests/golden"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .fuzzer .pytest_cache .mypy_cache .ruff_cache reports/*/

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)
