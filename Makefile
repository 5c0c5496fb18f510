# Agora: `make run` starts the local stack, `make test` runs the suite. Both set up .venv first.
# `make package` builds the deployable stack (build/sam.json and its zips, README "Deploy to AWS");
# `make lint-infra` checks it offline (cfn-lint, asl-validator); `make lint` runs ruff and mypy;
# `make test` runs both, then pytest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
BUILD ?= build
STAGE ?= prod
# chalice package refuses to run without a region; the template itself names none (it uses AWS::Region)
PACKAGE_REGION := $(or $(AWS_DEFAULT_REGION),$(AWS_REGION),us-east-1)
# the fragment patches and refers to resources only chalice generates (functions, their roles, the API):
# GetAtt of a function it does not define (E1010) and patches without a Type (E3001) are expected there;
# the merged template is linted with every rule
FRAGMENT_ONLY_CHECKS := E1010,E3001

.PHONY: run test bench bench-storage venv clean package lint lint-infra reset fuzz soak

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: $(STAMP)
	$(PY) -m devstack

# the local stack's data (AGORA_DATA_DIR, default .agora/): gone for good
reset:
	rm -rf "$(or $(AGORA_DATA_DIR),.agora)"
	@echo "local stack data removed"

# DefinitionUri is relative to the template: `aws cloudformation package` looks for the ASL next to sam.json
# open mode lets requests without a key in: a package carrying it in its environment is refused
package: $(STAMP)
	@if [ -n "$$AGORA_OPEN_TENANT" ] || grep -q AGORA_OPEN_TENANT .chalice/config.json; then \
		echo "make package: AGORA_OPEN_TENANT is for the local stack only; unset it and remove it from .chalice/config.json" >&2; \
		exit 1; fi
	rm -rf $(BUILD)
	AWS_DEFAULT_REGION=$(PACKAGE_REGION) $(VENV)/bin/chalice package --stage $(STAGE) \
		--merge-template infra/template.json $(BUILD)
	mkdir -p $(BUILD)/infra
	cp infra/simulation.asl.json $(BUILD)/infra/simulation.asl.json

lint-infra: package $(NODE_STAMP)
	$(VENV)/bin/cfn-lint -- $(BUILD)/sam.json
	$(VENV)/bin/cfn-lint --ignore-checks $(FRAGMENT_ONLY_CHECKS) -- infra/template.json
	node_modules/.bin/asl-validator --json-path infra/simulation.asl.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint lint-infra
	$(PY) -m pytest -q

# Agora side by side with MLflow and FastTrackML over HTTP, one client interface, one workload (bench/compare.py,
# bench/README.md): FAST=1 for a quick run (one round, no 1M-point rows), SYSTEMS=agora,mlflow to choose (the first
# is the reference of the ratios), BENCH_ARGS for more (e.g. BENCH_ARGS="--rounds 5"). The peers run from their own
# venvs under bench/.venvs, created on first use from bench/peers/requirements-*.txt (pinned).
BENCH_VENVS := bench/.venvs
BENCH_COMMA := ,
BENCH_PEERS := $(filter mlflow fasttrackml,$(subst $(BENCH_COMMA), ,$(or $(SYSTEMS),mlflow fasttrackml)))
BENCH_ARGS ?=
bench: $(STAMP) $(foreach peer,$(BENCH_PEERS),$(BENCH_VENVS)/$(peer)/.installed)
	@$(PY) -m bench.compare $(if $(filter-out 0,$(FAST)),--fast) $(if $(SYSTEMS),--systems $(SYSTEMS)) $(BENCH_ARGS)
	@$(PY) -m bench.mlflow_client $(if $(filter-out 0,$(FAST)),--rounds 1 --runs 5)
	@AGORA_BENCH_SIM_QUICK=$(if $(filter-out 0,$(FAST)),1,0) $(PY) -m bench.sim_throughput

$(BENCH_VENVS)/mlflow/.installed: bench/peers/requirements-mlflow.txt
	test -x $(BENCH_VENVS)/mlflow/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/mlflow
	$(BENCH_VENVS)/mlflow/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

# FastTrackML's wheel carries the Go server (bin/fml); its declared mlflow<3 dependency is not needed for that
$(BENCH_VENVS)/fasttrackml/.installed: bench/peers/requirements-fasttrackml.txt
	test -x $(BENCH_VENVS)/fasttrackml/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/fasttrackml
	$(BENCH_VENVS)/fasttrackml/bin/pip install --quiet --disable-pip-version-check --no-deps -r $<
	touch $@

# the storage benches: Agora's chunked metric storage against one item per point, in-process (bench/README.md)
bench-storage: $(STAMP)
	$(PY) -m pytest -q -m bench -s bench

# the local stack under 1,000,000 points and 3,000 runs with a restart half way (bench/soak.py)
soak: $(STAMP)
	$(PY) -m bench.soak

# schemathesis, every check, against the local stack for FUZZ_SECONDS (fuzz/run.py); fails on any failure.
# FUZZ_SEED picks another seed than fuzz/run.py's; FUZZ_ARGS passes more options (FUZZ_ARGS="--report-dir DIR")
FUZZ_SECONDS ?= 600
FUZZ_SEED ?=
FUZZ_ARGS ?=
fuzz: $(STAMP)
	$(PY) -m fuzz.run --max-time $(FUZZ_SECONDS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED)) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache $(BUILD) node_modules
