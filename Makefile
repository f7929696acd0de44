# wardwatch — the two commands a newcomer needs: `make demo` and `make test`.
# Everything they need (virtual environments, Kafka broker jars) is set up on first use and
# cached outside the clone, keyed on the lock files, so a second run starts at once.
#
# Two environments, both installed from pinned lock files (requirements/, `make lock`):
#   serving  requirements/serve.txt  the services only (onnxruntime, no PyTorch): make demo
#   full     requirements/all.txt    serving + every extra (train, plots, test, bench): make test
# uv (itself pinned by hash in requirements/uv.txt) installs them.

SHELL := /bin/bash
PYTHON ?= python3
CACHE_DIR ?= $(or $(WARDWATCH_CACHE_DIR),$(HOME)/.cache/wardwatch)
UV_VERSION := 0.13.9
LOCK_SERVE := requirements/serve.txt
LOCK_ALL := requirements/all.txt
ENV_KEY := deploy/scripts/env-key.py
# Full environment: tests, training, benchmarks.
VENV ?= $(CACHE_DIR)/venv-all-$(shell $(PYTHON) $(ENV_KEY) $(LOCK_ALL))
PY := $(VENV)/bin/python
# Serving environment: what the demo (and the Docker image) run on.
SERVE_VENV ?= $(CACHE_DIR)/venv-serve-$(shell $(PYTHON) $(ENV_KEY) $(LOCK_SERVE))
SERVE_PY := $(SERVE_VENV)/bin/python
UV_DIR := $(CACHE_DIR)/uv-$(shell $(PYTHON) $(ENV_KEY) requirements/uv.txt)
UV := $(UV_DIR)/bin/uv
# uv's download cache sits beside the environments (same file system: uv hard-links from it).
export UV_CACHE_DIR ?= $(CACHE_DIR)/uv-cache
# The environments use the interpreter given as PYTHON, never one uv would download.
export UV_PYTHON_DOWNLOADS := never
# The working tree always wins over whatever the cached venv has installed.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export WARDWATCH_CACHE_DIR := $(CACHE_DIR)

DURATION ?= 0
PATIENTS ?= 40
SPEED ?= 60
PYTEST_ARGS ?=
MINUTES ?= 30
SEED ?= 1
FAULT_EVERY ?= 30
UPGRADE ?=
LOCK_OUT ?= requirements
LINT_PATHS := wardwatch sim ingest inference alerts runtime

.PHONY: help venv serve-venv serve-check jars lock lock-check lint compose-ready demo test bench bench-full soak train evaluate plots clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# uv, pinned by hash, in its own venv in the cache; installed on first use only. (A shell
# snippet rather than a make prerequisite: an already-installed environment must not need it.)
ensure-uv = [ -x $(UV) ] || { echo "installing uv $(UV_VERSION) into $(UV_DIR)" && rm -rf $(UV_DIR) \
	&& $(PYTHON) -m venv $(UV_DIR) && $(UV_DIR)/bin/python -m pip install --quiet --no-cache-dir \
	--disable-pip-version-check --require-hashes -r requirements/uv.txt; }

# $(call install-env,VENV,LOCK,WHAT): a venv with exactly the lock's packages (hashes checked),
# plus this project (editable, no dependencies; its build backend pinned by requirements/build.txt).
# One shell, holding a lock file where flock exists, so that concurrent runs install it once.
define install-env
	@mkdir -p $(CACHE_DIR) && exec 9>$(1).lock && { ! command -v flock >/dev/null || flock 9; } \
		&& if [ ! -e $(1)/.ready ]; then \
			echo "setting up the $(3) in $(1) from $(2)" && $(ensure-uv) && rm -rf $(1) \
			&& $(UV) venv --quiet --python $(PYTHON) $(1) \
			&& $(UV) pip sync --quiet --python $(1)/bin/python --require-hashes $(2) \
			&& $(UV) pip install --quiet --python $(1)/bin/python --no-deps --build-constraints requirements/build.txt -e . \
			&& touch $(1)/.ready; \
		fi
endef

# The environments are keyed on their lock file's content, so they have no file prerequisites
# (a fresh clone's newer mtimes must not rebuild a cached environment). `.ready` marks a
# finished install; an interrupted one is rebuilt from scratch.
$(VENV)/.ready:
	$(call install-env,$(VENV),$(LOCK_ALL),full Python environment (PyTorch included: a few minutes))

$(SERVE_VENV)/.ready:
	$(call install-env,$(SERVE_VENV),$(LOCK_SERVE),serving Python environment)

venv: $(VENV)/.ready ## create the cached full environment (tests, training, benchmarks)

serve-venv: $(SERVE_VENV)/.ready ## create the cached serving environment (the services only)

serve-check: serve-venv ## the serving environment has no PyTorch and loads every wardwatch command
	@! $(SERVE_PY) -c 'import torch' 2>/dev/null || { echo "the serving environment has PyTorch" >&2; exit 1; }
	@$(SERVE_PY) -m wardwatch --help >/dev/null && echo "serving environment: every command loads without PyTorch"

jars: venv ## resolve the Apache Kafka broker jars with Maven (cached)
	@$(PY) -m wardwatch broker fetch

lock: ## re-resolve requirements/*.txt from pyproject.toml (UPGRADE=1: newest allowed versions)
	@$(ensure-uv)
	@mkdir -p $(LOCK_OUT)
	@$(UV) pip compile --quiet $(if $(UPGRADE),--upgrade) --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" pyproject.toml --all-extras -o $(LOCK_OUT)/all.txt
	@# Serving pins are taken from the full lock, so the tests run exactly what the demo and image serve.
	@$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" pyproject.toml --constraints $(LOCK_OUT)/all.txt -o $(LOCK_OUT)/serve.txt
	@$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(UV) pip compile --quiet $(if $(UPGRADE),--upgrade) --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" - -o $(LOCK_OUT)/build.txt
	@echo "uv==$(UV_VERSION)" | $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" - -o $(LOCK_OUT)/uv.txt

lock-check: ## fail if requirements/*.txt no longer match pyproject.toml (run `make lock`)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp requirements/*.txt $$tmp/ \
		&& $(MAKE) --no-print-directory lock LOCK_OUT=$$tmp UPGRADE= \
		&& for f in requirements/*.txt; do \
			diff <(grep -E '^[A-Za-z0-9]' $$f) <(grep -E '^[A-Za-z0-9]' $$tmp/$${f##*/}) >/dev/null \
			|| { echo "$$f is out of date with pyproject.toml: run \`make lock\` and commit it" >&2; exit 1; }; \
		done

compose-ready: ## a Docker engine, Compose v2 and the Debian stand-ins for Docker Hub images (root; for the compose test)
	@bash deploy/docker/ci/engine.sh
	@bash deploy/docker/ci/images.sh

lint: venv ## ruff and mypy over the packages (configured in pyproject.toml)
	@$(PY) -m ruff check $(LINT_PATHS) tests bench
	@$(PY) -m mypy $(LINT_PATHS)

demo: serve-venv ## run the whole pipeline on a local broker (DURATION=seconds, 0 = until Ctrl-C)
	@$(SERVE_PY) -m wardwatch broker fetch
	@$(SERVE_PY) -m wardwatch demo --duration $(DURATION) --patients $(PATIENTS) --speed $(SPEED)

test: jars ## run the whole test suite against a real Kafka broker
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: jars ## quick benchmarks -> bench/results/latest.{json,md}
	@$(PY) -m bench --quick

bench-full: jars ## full benchmarks (longer)
	@$(PY) -m bench

soak: jars ## the pipeline under a seeded stream of real faults (MINUTES=30 SEED=1 FAULT_EVERY=30) -> bench/results/soak.{json,md}
	@$(PY) -m bench.soak --minutes $(MINUTES) --seed $(SEED) --fault-every $(FAULT_EVERY)

# The shipped checkpoint's recipe (its MODEL_CARD.md): 600 simulated patients plus 70% of the
# PhysioNet 2019 and 2012 stays; P19 and P12 are the files from PhysioNet (docs/real-data.md).
TRAIN_RECIPE = --patients 600 --batch 50 --val-patients 200 --real-batch 32 --lr 3e-3 --epochs 5 --max-minutes 60 \
	--ema 0.998 --threads 2 --calibrate-on sim --split-salt wardwatch-split-4 --source-weights physionet2019=3,sim=4,physionet2012=0.5

train: venv ## retrain the shipped checkpoint: make train P19=<PhysioNet 2019 .tar.gz or dir> P12=<PhysioNet 2012 .tar.gz or dir>
	@test -n "$(P19)" && test -n "$(P12)" || { echo "make train: needs P19=<PhysioNet 2019 .tar.gz or directory> P12=<PhysioNet 2012 .tar.gz or directory> (docs/real-data.md)"; exit 2; }
	$(PY) -m wardwatch import physionet2019 $(P19) --limit 6000 --out .wardwatch/cohorts/p19
	$(PY) -m wardwatch import physionet2012 $(P12) --out .wardwatch/cohorts/p12
	$(PY) -m wardwatch train $(TRAIN_RECIPE) --cohorts .wardwatch/cohorts/p19,.wardwatch/cohorts/p12 --out inference/checkpoints/default

evaluate: venv ## evaluate the shipped checkpoint against NEWS2 on held-out cohorts
	@$(PY) -m wardwatch evaluate

clean: ## stop the local broker and delete its data (the cached venv and jars stay)
	-@$(if $(wildcard $(PY)),$(PY),$(SERVE_PY)) -m wardwatch broker stop
	rm -rf .wardwatch .pytest_cache
