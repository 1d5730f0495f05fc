# The two commands a newcomer needs: `make demo` and `make test`.
# Both create ./.venv on first use and install the project into it; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: demo test test-slow lint coverage bench
demo: $(STAMP)
	$(VENV)/bin/feedback-worker demo

# The suite without the long fault tests (kill -9 loops, network faults: about 12 minutes more), which CI
# always runs too (.ci/run: `make test test-slow`). It runs on 4 processes (pytest-xdist): most tests wait on a
# broker or a worker process, not the CPU, so 4 beat 2 or 3 on a 2-core machine (3.5 min against 4.3 and 5.9; 13.5
# alone). Each process has its own embedded broker; tests are handed out one at a time, the long ones first
# (tests/conftest.py). `make test PARALLEL=` runs them in one process, in file order.
PARALLEL ?= -n 4 --dist load --maxschedchunk 1

test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PARALLEL) $(PYTEST_ARGS)

# One process: kill -9 loops and network faults with timing of their own, not to share two cores with others.
test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow $(PYTEST_ARGS)

# ruff (lint, and the format check) and mypy, configured in pyproject.toml; .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check worker tests bench
	$(VENV)/bin/ruff format --check worker tests bench
	$(VENV)/bin/mypy worker

# Line and branch coverage of worker/ over `make test`'s suite, run as `make test` runs it ([tool.coverage] in
# pyproject.toml): the pytest processes and the worker and CLI processes the tests start, combined, per module.
coverage: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PARALLEL) --cov=worker --cov-branch --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/throughput.py
