# FNP TripleCheck — set-up, run and test.  `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501
# The suite runs in this many processes, a test file to each (pytest-xdist); 2 fits the 2-core CI machine.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup run lint test test-all test-fast browser postgres bench gpu-check clean-venv

# The venv is (re)built when missing or when requirements.txt (or pyproject.toml) is newer than the
# last install. The project itself is installed editable: the `fnp` command (.venv/bin/fnp).
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@cp requirements.txt $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m labeling init
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

# Debian's Chromium drives the end-to-end tests (never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# Debian's PostgreSQL server: the tests start a throwaway cluster of their own (tests/postgres.py).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

# ruff.toml holds the rules; the linter runs before the tests.
lint: setup
	$(BIN)/ruff check .

test: setup browser postgres lint
	$(PYTEST)

# Also the `extended` tests (pytest.ini): every architecture under XLA, the TensorFlow GPU-check smoke.
test-all: setup browser postgres lint
	$(PYTEST) -m "extended or not extended"

# Everything but the slow end-to-end and training tests.
test-fast: setup postgres
	$(PYTEST) -m "not slow and not extended"

# The benchmarks print their figures; docs/performance.md records them.
bench: setup
	$(BIN)/python bench/asymmetry.py
	$(BIN)/python bench/generator_indices.py
	$(BIN)/python bench/read_queue.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/train.py

# On a GPU machine: the one-command GPU check (docs/model.md, "The GPU check"); no venv needed there.
# Options go in GPU_CHECK_ARGS, e.g. make gpu-check GPU_CHECK_ARGS="--wheels wheels --backend torch".
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) bench/gpu_check.py $(GPU_CHECK_ARGS)
