#!/bin/sh
# Builds the small native helper for --net tap (build/tap-relay). Not fatal
# without a C compiler: only the TAP backend needs it, and it says so.
set -e
cd "$(dirname "$0")/.."
mkdir -p build
if command -v cc >/dev/null 2>&1; then
  cc -O2 -Wall -o build/tap-relay native/tap-relay.c
else
  echo "build-native: no C compiler (cc); --net tap will be unavailable" >&2
fi
