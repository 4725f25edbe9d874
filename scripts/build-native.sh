#!/bin/sh
# Builds the small native pieces in native/ (into build/). Not fatal without a
# C compiler or Node's headers: each piece is optional and tsvisor says what is
# missing when a feature needs it.
#   tap-relay          --net tap (Node cannot issue TUNSETIFF)
#   guest-memory.node  returns ballooned guest pages to the host, measures touched RAM
#   image-lock.node    OFD locks on disk images (without it, locks hold only inside one process)
set -e
cd "$(dirname "$0")/.."
mkdir -p build
if ! command -v cc >/dev/null 2>&1; then
  echo "build-native: no C compiler (cc); --net tap and releasing ballooned memory will be unavailable, image locks hold only inside one process" >&2
  exit 0
fi
cc -O2 -Wall -o build/tap-relay native/tap-relay.c
# Node's headers sit next to the node binary (PREFIX/bin/node, PREFIX/include/node).
inc="$(node -p "require('node:path').resolve(process.execPath, '../../include/node')")"
if [ -f "$inc/node_api.h" ]; then
  cc -O2 -Wall -shared -fPIC -I"$inc" -o build/guest-memory.node native/guest-memory.c
  cc -O2 -Wall -shared -fPIC -I"$inc" -o build/image-lock.node native/image-lock.c
else
  echo "build-native: Node's headers (node_api.h) not found; ballooned memory will not be returned to the host, and image locks hold only inside one process" >&2
fi
