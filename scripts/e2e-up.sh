#!/usr/bin/env bash
# A kind cluster with Sparkbook installed, for `make demo` and the e2e suite. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${CLUSTER:-sparkbook}"
KUBECTL="${KUBECTL:-$( [ -x .venv/bin/kubectl ] && echo .venv/bin/kubectl || echo kubectl )}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
SPARK_IMAGE="apache/spark:4.3.0-python3"
CONTEXT="kind-${CLUSTER}"

kind get clusters | grep -qx "${CLUSTER}" || kind create cluster --name "${CLUSTER}" --config kind-config.yaml --wait 120s
docker build -f images/operator/Dockerfile -t "ghcr.io/sparkbook/operator:${VERSION}" .
docker build -f images/notebook/Dockerfile -t "ghcr.io/sparkbook/notebook:${VERSION}" .
docker image inspect "${SPARK_IMAGE}" >/dev/null 2>&1 || docker pull "${SPARK_IMAGE}"
kind load docker-image --name "${CLUSTER}" \
  "ghcr.io/sparkbook/operator:${VERSION}" "ghcr.io/sparkbook/notebook:${VERSION}" "${SPARK_IMAGE}"
"${KUBECTL}" --context "${CONTEXT}" apply --server-side -f manifests/install.yaml
"${KUBECTL}" --context "${CONTEXT}" -n sparkbook-system rollout status deployment/sparkbook --timeout=300s
