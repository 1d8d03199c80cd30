#!/usr/bin/env bash
# One install path for `make run`, `make test`, CI and the Dockerfile: Debian packages through
# apt (only the missing ones, so a second run is quick and offline), then the project's venv.
#   setup.sh runtime   what the server needs (make run, the Dockerfile)
#   setup.sh test      that plus the test suite's tools and Python test dependencies (default)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
profile=${1:-test}
case $profile in
    runtime) lists=("$here/scripts/system-packages.txt"); extras="" ;;
    test) lists=("$here/scripts/system-packages.txt" "$here/scripts/test-packages.txt"); extras="[test]" ;;
    *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac

mapfile -t wanted < <(cat "${lists[@]}" | grep -v '^\s*#' | grep -v '^\s*$')
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root or install them." >&2
        exit 1
    fi
    echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
    # Packaged daemons (named, nginx, tftpd-hpa, postgresql) must not start on install: tests
    # start their own instances on loopback ports and would collide with system ones.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp=$venv/.installed-$profile
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e "$here$extras"
    touch "$stamp"
fi
