#!/usr/bin/env bash
# Install the PostgreSQL server binaries the storage tests run against (Debian's postgresql:
# initdb, pg_ctl, postgres under /usr/lib/postgresql/<version>/bin). The tests start a throwaway
# cluster of their own (tests/pg.py), so the package's own cluster is kept from running: no
# service starts during the install (policy-rc.d) and the "main" cluster is stopped after it.
# Idempotent and silent when the binaries are already there.
# Usage: scripts/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && id postgres >/dev/null 2>&1; }

have_server && exit 0

# exit code 101 from policy-rc.d tells invoke-rc.d not to start any service
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql >/dev/null
# the package made a "main" cluster on 5432: make sure it is not running, now or after a boot
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _; do
        as_root pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    done
fi
if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
have_server || { echo "postgresql installed but initdb not found" >&2; exit 1; }
