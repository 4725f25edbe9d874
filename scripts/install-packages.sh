#!/usr/bin/env bash
# Install the Debian packages listed in scripts/packages.txt (apt-get update once).
# Uses sudo when not run as root. Used by scripts/setup.sh and .ci/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$')
if [ "${#pkgs[@]}" -eq 0 ]; then
  echo "install-packages: no packages listed in $here/packages.txt" >&2
  exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install-packages: run as root or install sudo" >&2
    exit 1
  fi
  as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${pkgs[@]}"
