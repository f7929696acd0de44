# wardwatch — the two commands a newcomer needs: `make demo` and `make test`.
# Everything they need (virtual environment, Kafka broker jars) is set up on first use and
# cached outside the clone, keyed on the dependency list, so a second run starts at once.

SHELL := /bin/bash
PYTHON ?= python3
CACHE_DIR ?= $(or $(WARDWATCH_CACHE_DIR),$(HOME)/.cache/wardwatch)
ENV_KEY := $(shell $(PYTHON) deploy/scripts/env-key.py pyproject.toml)
VENV ?= $(CACHE_DIR)/venv-$(ENV_KEY)
PY := $(VENV)/bin/python
# The working tree always wins over whatever the cached venv has installed.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export WARDWATCH_CACHE_DIR := $(CACHE_DIR)

DURATION ?= 0
PATIENTS ?= 40
SPEED ?= 60
PYTEST_ARGS ?=

.PHONY: help venv jars demo test bench bench-full train evaluate plots clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.ready: pyproject.toml deploy/scripts/env-key.py
	@echo "setting up the Python environment in $(VENV) (first run downloads PyTorch: a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet --progress-bar off -e '.[test,plots,bench]'
	@touch $@

venv: $(VENV)/.ready ## create the cached virtual environment
	@$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true

jars: venv ## resolve the Apache Kafka broker jars with Maven (cached)
	@$(PY) -m wardwatch broker fetch

demo: jars ## run the whole pipeline on a local broker (DURATION=seconds, 0 = until Ctrl-C)
	@$(PY) -m wardwatch demo --duration $(DURATION) --patients $(PATIENTS) --speed $(SPEED)

test: jars ## run the whole test suite against a real Kafka broker
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: jars ## quick benchmarks -> bench/results/latest.{json,md}
	@$(PY) -m bench --quick

bench-full: jars ## full benchmarks (longer)
	@$(PY) -m bench

train: venv ## retrain the shipped model checkpoint
	@$(PY) -m wardwatch train

evaluate: venv ## evaluate the shipped checkpoint against NEWS2 on held-out cohorts
	@$(PY) -m wardwatch evaluate

clean: ## stop the local broker and delete its data (the cached venv and jars stay)
	-@$(PY) -m wardwatch broker stop
	rm -rf .wardwatch .pytest_cache
