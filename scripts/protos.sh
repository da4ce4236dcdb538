#!/usr/bin/env bash
# Regenerate the Python modules of aims_agent/collectors/protocols/oip.proto (oip_pb2.py and its
# type stubs oip_pb2.pyi). They are checked in, so installing aims-agent needs no code generator;
# tests/collectors/test_oip_grpc.py fails when they differ from what this script produces.
# Needs grpcio-tools (the dev extra). Usage: scripts/protos.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-${PYTHON:-python3}}"
"$py" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. aims_agent/collectors/protocols/oip.proto
