#!/usr/bin/env bash
# `make demo`: a kind cluster, Sparkbook installed, examples/notebookserver.yaml applied and Ready.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${CLUSTER:-sparkbook}"
KUBECTL="${KUBECTL:-$( [ -x .venv/bin/kubectl ] && echo .venv/bin/kubectl || echo kubectl )}"
K=("${KUBECTL}" --context "kind-${CLUSTER}")
scripts/e2e-up.sh
"${K[@]}" create namespace team-a --dry-run=client -o yaml | "${K[@]}" apply -f -
"${K[@]}" apply -f examples/notebookserver.yaml
echo "waiting for the notebook and its Spark session (the first image pulls take a while) ..."
"${K[@]}" -n team-a wait --for=condition=Ready sparksession/alice-spark --timeout=20m
"${K[@]}" -n team-a wait --for=condition=Ready notebookserver/alice --timeout=20m
TOKEN="$("${K[@]}" -n team-a get secret alice-token -o jsonpath='{.data.token}' | base64 -d)"
cat <<MSG

Sparkbook is running. Open the notebook:

  ${KUBECTL} --context kind-${CLUSTER} -n team-a port-forward svc/alice 8888:8888
  http://localhost:8888/lab?token=${TOKEN}

In the first cell, \`spark\` is ready; %%help lists the magics. Stop with: kind delete cluster --name ${CLUSTER}
MSG
