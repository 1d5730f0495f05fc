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

.PHONY: demo test test-slow bench
demo: $(STAMP)
	$(VENV)/bin/feedback-worker demo

# The suite without the long fault tests (kill -9 loops, network faults: about 12 minutes more), which CI
# always runs too (.ci/run: `make test test-slow`).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/throughput.py
