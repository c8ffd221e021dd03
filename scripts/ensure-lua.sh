#!/usr/bin/env bash
# The Argo CD health checks (argocd/resource_customizations) are tested in Lua 5.1, the dialect Argo CD
# embeds (gopher-lua). Use the machine's lua5.1; install Debian's when it is missing and we may.
set -euo pipefail
if command -v lua5.1 >/dev/null 2>&1; then
  echo "$(lua5.1 -v 2>&1 | awk '{print $1, $2}'): ok"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "lua5.1 not found: installing lua5.1"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 >/dev/null
  lua5.1 -v
  exit 0
fi
echo "Lua 5.1 is required for the Argo CD health check tests (and was not found): install lua5.1 and put it on PATH." >&2
exit 1
