# The two commands of the quickstart:
#   make demo   set up, generate sample logs, run the whole pipeline
#   make test   set up, lint, type-check, run the tests
#   make test-faults   the slow fault suite (CI runs both)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONF   ?= conf/local.yaml
AS_OF  ?= 2026-05-01

.PHONY: demo test test-faults lint setup clean check-prereqs

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory check-prereqs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[spark,dev]'
	@touch $@

setup: $(VENV)/.installed

check-prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "userprofile needs Python 3.10+; found " + sys.version.split()[0] + " (set PYTHON=...)")'
	@command -v java >/dev/null 2>&1 || { echo "userprofile needs a JDK 17 on PATH (java not found); e.g. apt-get install openjdk-17-jdk-headless" >&2; exit 1; }

# Demo only: a published key, so the quickstart runs as is. userprofile accepts it only on
# the sample `userprofile generate` writes (ingest/privacy.py); real data needs your own key.
demo: export USERPROFILE_PSEUDONYM_KEY ?= demo-key-not-secret-0123456789abcdef
demo: setup
	$(BIN)/userprofile generate --conf $(CONF) --skip-existing
	$(BIN)/userprofile pipeline --conf $(CONF) --as-of $(AS_OF)
	$(BIN)/userprofile report --conf $(CONF) --as-of $(AS_OF)
	@echo "Read it without Spark: $(BIN)/python -c \"import deltalake; print(deltalake.DeltaTable('data/warehouse/gold/user_profile').to_pandas().head())\""

lint: setup
	$(BIN)/ruff check lib tests jobs notebooks scripts
	$(BIN)/ruff format --check lib tests jobs notebooks scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 --dist loadfile --durations=25 --ignore=tests/faults

# Kill points, concurrent runs, a full or read-only disk (README "Reliability"); CI runs it too.
test-faults: setup
	$(BIN)/pytest -n 2 --dist loadfile --durations=10 tests/faults

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
