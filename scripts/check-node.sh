#!/usr/bin/env bash
# Fail with a clear message unless node >= 20 and npm are on PATH.
set -euo pipefail
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "tsvisor needs Node.js 20 or later with npm; install them first (Debian 12 ships Node.js 18)" >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "tsvisor needs Node.js 20 or later; found $(node --version)" >&2
  exit 1
fi
