#!/usr/bin/env bash
# Create .venv and install aims-agent with the given extras; idempotent, re-runs when
# pyproject.toml changes. Installs Debian's python3-venv first if this Python lacks venv.
# Usage: scripts/setup.sh EXTRAS   (e.g. "demo" or "dev")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
py="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "aims-agent needs Python 3.11 or newer as '$py' (set PYTHON=...)" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$py" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        as_root apt-get update -qq
        as_root apt-get install -y -qq "python${ver}-venv" || as_root apt-get install -y -qq python3-venv
        "$py" -m venv .venv
    fi
fi
stamp=".venv/.aims-installed-${extras}"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[${extras}]"
    echo "$want" > "$stamp"
fi
