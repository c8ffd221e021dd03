#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's Chromium through Playwright's Python package
# (executable_path; Playwright's own browser download is never used). Use the machine's chromium;
# install Debian's when it is missing and we may.
set -euo pipefail
CHROMIUM="${SPARKBOOK_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "$("$CHROMIUM" --version 2>/dev/null | head -1): ok"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  "$CHROMIUM" --version
  exit 0
fi
echo "Chromium is required for the browser tests (tests/browser) and was not found at $CHROMIUM: install Debian's chromium (or set SPARKBOOK_CHROMIUM)." >&2
exit 1
