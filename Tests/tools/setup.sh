#!/usr/bin/env bash
# Installs what building and testing numaplaced needs on a fresh Debian 12 machine with Swift:
# the C libraries (libnuma, libsystemd, libudev), numactl and udev for the live tests, hwloc for the
# query benchmark's anchor, gcc for the probe, and the PyPI varlink client the live tests call.
# Idempotent and quick when everything is there already.
set -euo pipefail
need=()
for pkg in libnuma-dev libsystemd-dev libudev-dev numactl udev gcc libc6-dev pkg-config python3-pip hwloc-nox util-linux; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import varlink' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check varlink==31.0.0 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages varlink==31.0.0
echo "setup: dependencies present"
