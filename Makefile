# Sparkbook developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# checkov (tests/static) pins packaging<24 and, through botocore, python-dateutil<3, which clash with
# pytest 9 and kubernetes 37: it gets a virtualenv of its own.
CHECKOV := $(VENV)/checkov/bin/checkov
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv kernels test test-unit test-api test-workload crds manifests argocd golden render local demo e2e e2e-kind clean bench cluster cluster-down cluster-build

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

$(CHECKOV):
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install -q 'checkov==3.3.30'

venv: $(STAMP) $(CHECKOV) ## a virtualenv with everything the tests need
	@scripts/ensure-java.sh
	@scripts/ensure-lua.sh
	@scripts/ensure-chromium.sh
	@scripts/ensure-chp.sh $(VENV)

kernels: venv ## the Scala and R kernels beside the Python one: R, IRkernel, reticulate, ggplot2 from Debian's packages
	@scripts/ensure-r.sh
	$(BIN)/sparkbook kernels install
	$(BIN)/jupyter kernelspec list

test: venv kernels cluster-build ## the whole suite, the e2e tests on a real control plane of their own included
	$(BIN)/ruff check operator tests
	$(BIN)/sparkbook crds --check
	$(BIN)/python -m sparkbook.chart --check
	$(BIN)/python -m sparkbook.argocd --check
	$(BIN)/python -m pytest -ra --durations=15

test-unit: venv
	$(BIN)/python -m pytest -ra tests/unit

test-api: venv
	$(BIN)/python -m pytest -ra tests/api tests/emulator

test-workload: venv
	$(BIN)/python -m pytest -ra tests/workload

crds: venv ## regenerate crds/ from the API models
	$(BIN)/sparkbook crds

manifests: venv ## regenerate charts/sparkbook/crds/ and manifests/install.yaml from crds/ and the chart
	$(BIN)/python -m sparkbook.chart

argocd: venv ## regenerate argocd/argocd-cm-patch.yaml and its copy in docs/gitops.md from the health.lua files
	$(BIN)/python -m sparkbook.argocd

golden: venv ## rewrite the golden manifests after a reviewed builder change
	UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/unit -k golden

render: venv
	$(BIN)/sparkbook render -f examples/sparksession.yaml

local: $(STAMP) ## the example NotebookServer on this machine: Spark Connect + JupyterLab, no cluster
	@scripts/ensure-java.sh
	$(BIN)/sparkbook local -f examples/notebookserver.yaml

demo: venv ## a kind cluster with Sparkbook and the example notebook (needs Docker and kind)
	scripts/demo.sh

cluster-build: venv ## build (once, cached outside the work tree) kube-apiserver, controllers, kubectl, etcd, KWOK, Helm
	$(BIN)/python -m sparkbook.testing.cluster build

cluster: cluster-build ## a real Kubernetes control plane on loopback; admin kubeconfig in .cluster/kubeconfig
	$(BIN)/python -m sparkbook.testing.cluster up

cluster-down: ## stop what `make cluster` started
	$(BIN)/python -m sparkbook.testing.cluster down

e2e: cluster-build ## the e2e suite alone, on a real control plane of its own
	$(BIN)/python -m pytest -ra tests/e2e

e2e-kind: venv ## the tests that need real containers, on a kind cluster (needs Docker and kind)
	SPARKBOOK_E2E=kind $(BIN)/python -m pytest -ra tests/kind

bench: venv cluster-build ## scale benchmark: the operator against the emulator, or ARGS="--target real" a real control plane (ARGS=--quick: a smoke run)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
