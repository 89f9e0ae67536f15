# Everything runs from the pinned virtualenvs; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
LINT_VENV := .venv-lint
PY := $(VENV)/bin/python
STACK ?= dev
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: venv lint-venv toolchain image local-up local-down plan plan-all golden config-reference test test-fast unit-after-typecheck unit-beside lint ruff typecheck audit restore bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) -r requirements-dev.txt >$(VENV)/pip.log 2>&1 || { grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1; }
	$(PY) -m pip check
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install $(PIP_QUIET) -r requirements-lint.txt >$(LINT_VENV)/pip.log 2>&1 || { grep -v "^WARNING: Location" $(LINT_VENV)/pip.log; exit 1; }
	touch $@

venv: $(VENV)/.installed
lint-venv: $(LINT_VENV)/.installed

## toolchain: the Pulumi CLI, providers and control plane, built from the Go module proxy into ~/.cache (pins: toolchain/versions.env)
toolchain:
	bash toolchain/build.sh

## image: build images/mlflow (MLflow with Kubeflow's plugins) with docker, podman or buildah and push it to REGISTRY
## (default localhost:32000, MicroK8s's registry addon); BUILDER=docker|podman|buildah to choose
image:
	$(PYTHON) -m tools.dev.image $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(BUILDER),--builder $(BUILDER))

## local-up: an embedded cluster on 127.0.0.1 and the real `pulumi up` of STACK (default dev) onto it
local-up: venv toolchain
	$(PY) -m tools.dev.local_up up --stack $(STACK)

## local-down: stop everything local-up started
local-down: venv
	$(PY) -m tools.dev.local_up down

## plan: render what `pulumi up` would deploy for STACK (default dev), offline
plan: venv
	$(PY) -m tools.dev.plan --stack $(STACK)

plan-all: venv
	$(PY) -m tools.dev.plan --stack dev >/dev/null
	$(PY) -m tools.dev.plan --stack prod >/dev/null

## golden: rewrite tests/golden/<stack>/ (dev and prod) from the current program; review and commit the diff
golden: venv
	$(PY) -m tools.dev.golden

## config-reference: rewrite docs/configuration.md and Pulumi.yaml's config block from the settings models; commit both
config-reference: venv
	$(PY) -m tools.dev.config_reference

## lint: ruff (lint and format check) over the repository, then typecheck
lint: venv ruff typecheck

ruff: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## typecheck: mypy, --strict over the package; the policy pack and tools/ too (pyproject.toml)
typecheck: venv
	$(VENV)/bin/mypy

## test-fast: the first thing to run (under a minute): ruff, then on one core mypy and part of the unit lane
## (goldens included, slow tests left out), on the other core the rest of it
test-fast: venv ruff
	$(MAKE) --no-print-directory -j2 --output-sync=target unit-after-typecheck unit-beside

UNIT := -m "unit and not slow" -q --ignore=tests/e2e --ignore=tests/cluster
# The unit directories that run the program most often under mocks: about half the lane's time.
UNIT_BESIDE := tests/tracking tests/serving tests/kubeflow tests/database

unit-after-typecheck: venv typecheck
	$(PY) -m pytest tests $(UNIT) $(addprefix --ignore=,$(UNIT_BESIDE))

unit-beside: venv
	$(PY) -m pytest $(UNIT_BESIDE) $(UNIT)

## test: the whole suite: lint, unit tests under mocks, conformance, policies, workflows, end-to-end, real engine
test: venv lint-venv toolchain lint
	$(PY) -m pytest

## audit: offline credential audit of a `pulumi stack export` file
audit: venv
	@test -n "$(STATE)" || { echo "usage: make audit STATE=<stack-export.json>" >&2; exit 2; }
	$(PY) -m tools.operator.audit "$(STATE)"

## restore: list or restore database dumps from the artifact store (README, Operations), e.g. ARGS="--bucket B --prefix backups/dev --list"
restore: venv
	$(PY) -m tools.operator.restore $(ARGS)

## bench: the figures the README quotes (not tests; timings are noisy on shared machines)
bench: venv toolchain
	$(PY) -m tools.bench.plan
	$(PY) -m tools.bench.policies --baseline 2956b7d
	$(PY) -m tools.bench.kubeflow
	$(PY) -m tools.bench.serving
	$(PY) -m tools.bench.e2e
	$(PY) -m tools.bench.load
	$(PY) -m tools.bench.sandbox
	$(PY) -m tools.bench.engine
	$(PY) -m tools.bench.scale
	$(PY) -m tools.bench.scale --no-policy --no-floor --sizes 50 200 --runs 1 --steps preview up noop --out build/bench/scale-no-policy.json
	$(PY) -m tools.bench.tenancy
	$(PY) -m tools.bench.test_fast

clean:
	if [ -x $(PY) ]; then $(PY) -m tools.dev.local_up down; fi
	rm -rf build .pytest_cache
