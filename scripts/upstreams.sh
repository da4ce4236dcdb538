#!/usr/bin/env bash
# Create .venv-upstreams with the real model servers the integration tests proxy to (MLServer,
# KServe, MLflow, scikit-learn); idempotent, re-installs when scripts/upstreams.txt changes.
# A venv of its own: these servers pin fastapi/pydantic/numpy apart from aims-agent's .venv.
# Usage: scripts/upstreams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
venv=.venv-upstreams
reqs=scripts/upstreams.txt

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! "$py" -c 'import sys; assert (3, 11) <= sys.version_info < (3, 13)' 2>/dev/null; then
    echo "the upstream servers (mlserver) need Python 3.11 or 3.12 as '$py' (set PYTHON=...)" >&2
    exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
    if ! "$py" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        as_root apt-get update -qq
        as_root apt-get install -y -qq "python${ver}-venv" || as_root apt-get install -y -qq python3-venv
        "$py" -m venv "$venv"
    fi
fi
stamp="$venv/.aims-upstreams-installed"
want=$(sha256sum "$reqs" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r "$reqs"
    echo "$want" > "$stamp"
fi
