#!/usr/bin/env bash
# JupyterHub's proxy for the hub tests (tests/api/test_jupyterhub.py, tests/e2e, tests/browser):
# configurable-http-proxy from npm, pinned, into the virtualenv (never global).
set -euo pipefail
VERSION=5.3.0
PREFIX="${1:-.venv}/chp"
BIN="$PREFIX/node_modules/.bin/configurable-http-proxy"
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "$VERSION" ]; then
  echo "configurable-http-proxy $VERSION: ok"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm is required for configurable-http-proxy (JupyterHub's proxy in the hub tests): install Node.js and npm." >&2; exit 1; }
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "configurable-http-proxy@$VERSION" >/dev/null
echo "configurable-http-proxy $("$BIN" --version): installed in $PREFIX"
