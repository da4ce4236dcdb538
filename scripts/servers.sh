#!/usr/bin/env bash
# Install the real Prometheus and Alertmanager the integration tests run against (Debian's
# prometheus: prometheus + promtool; prometheus-alertmanager: prometheus-alertmanager + amtool).
# Idempotent and silent when they are already there. The packages' own services are kept from
# starting (policy-rc.d during the install, stopped and disabled after) so they hold no ports.
# Usage: scripts/servers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
    || missing+=(prometheus-alertmanager)
[ ${#missing[@]} -eq 0 ] && exit 0

# exit code 101 from policy-rc.d tells invoke-rc.d not to start any service
policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ "$had_policy" = 0 ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap 'as_root rm -f "$policy"' EXIT
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
# in case a service started anyway (systemd, or a policy-rc.d of the host's that allows it):
# stop and disable it so it holds no ports (9090, 9093, 9094) the tests or the host want
for unit in prometheus prometheus-alertmanager; do
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$unit" ]; then
        as_root "/etc/init.d/$unit" stop >/dev/null 2>&1 || true
    fi
done
