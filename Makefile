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
# always runs too (.ci/run: `make test test-slow`).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow $(PYTEST_ARGS)

# ruff (lint, and the format check) and mypy, configured in pyproject.toml; .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check worker tests bench
	$(VENV)/bin/ruff format --check worker tests bench
	$(VENV)/bin/mypy worker

# Line and branch coverage of worker/ over `make test`'s suite (worker processes included), reported per module.
coverage: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" --cov=worker --cov-branch --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/throughput.py
