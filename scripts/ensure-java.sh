#!/usr/bin/env bash
# Spark 4 needs Java 17 or newer. Use the machine's; install Debian's JRE when it is missing and we may.
set -euo pipefail
version() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'; }
if command -v java >/dev/null 2>&1 && [ "$(version)" -ge 17 ]; then
  echo "java $(version): ok"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Java 17+ not found: installing openjdk-17-jre-headless"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  java -version
  exit 0
fi
echo "Java 17 or newer is required for Spark (and was not found): install a JDK/JRE 17+ and put java on PATH." >&2
exit 1
