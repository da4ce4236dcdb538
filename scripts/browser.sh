#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report browser test
# (tests/integration/test_report_browser.py). Idempotent and silent when it is already there.
# Usage: scripts/browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

command -v chromium >/dev/null 2>&1 && exit 0
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "chromium not found after install" >&2; exit 1; }
