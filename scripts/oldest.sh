#!/usr/bin/env bash
# The unit tests against the oldest numpy, scipy and pydantic that pyproject.toml declares, in a
# venv of their own (.venv-oldest, kept between runs): a floor the code outgrew fails here.
# compliance-trestle (OSCAL validation, a dev tool) needs pydantic>=2.11, so it is left out and
# the OSCAL test with it; everything else of the dev extra is installed.
# Usage: scripts/oldest.sh [pytest args]   (default: the tests that start no server)
# Environment: PYTHON (default python3.11), OLDEST_VENV (default .venv-oldest).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OLDEST_VENV:-.venv-oldest}
python=${PYTHON:-python3.11}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
constraints=$(mktemp)
requirements=$(mktemp)
trap 'rm -f "$constraints" "$requirements"' EXIT
# numpy>=2.0 in pyproject.toml -> numpy==2.0 (pip reads 2.0 as 2.0.0)
"$venv/bin/python" - "$constraints" "$requirements" <<'PY'
import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"]
dev = [d for d in project["optional-dependencies"]["dev"] if not d.startswith("compliance-trestle")]
open(sys.argv[2], "w").write("\n".join(d.replace("aims-agent[", "-e .[") for d in dev) + "\n")
pins = []
for dep in deps:
    m = re.match(r"^(numpy|scipy|pydantic)\s*>=\s*([0-9.]+)", dep)
    if m:
        pins.append(f"{m[1]}=={m[2]}")
if len(pins) != 3:
    sys.exit(f"expected floors for numpy, scipy and pydantic, found {pins}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
print("oldest:", " ".join(pins))
PY
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -c "$constraints" -r "$requirements"
"$venv/bin/python" -c "import numpy, scipy, pydantic; print('installed:', 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'pydantic', pydantic.VERSION)"
if [ $# -eq 0 ]; then
    set -- -m "not integration" -q tests --ignore tests/exporters/test_oscal.py
fi
exec "$venv/bin/python" -m pytest "$@"
