#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the HTML report test (tests/drift.rs), if it
# is not there yet. Prints the browser's path on stdout; progress goes to stderr.
set -euo pipefail

find_browser() {
  for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if browser=$(find_browser); then
  echo "$browser"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: no chromium found and not root: install Debian's chromium package" >&2
  exit 1
fi
echo "install-chromium: installing Debian's chromium..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
find_browser
