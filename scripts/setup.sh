#!/usr/bin/env bash
# First command of the README: install what tsvisor needs on Debian 12, build it,
# build the default guest (Debian riscv64 kernel + busybox initramfs) and boot it
# on this terminal. Leave the guest with `poweroff`, `exit`, or Ctrl-A X.
# Without a terminal (CI, scripts/fresh-check.sh) the boot is a check instead:
# the guest boots to its shell, is told to power off, and must exit with 0.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "checking Node.js"
bash scripts/check-node.sh
echo "node $(node --version), npm $(npm --version)"

step "installing Debian packages (scripts/packages.txt)"
bash scripts/install-packages.sh

step "installing npm dependencies and building (npm ci)"
npm ci

step "building the default guest (cached in \${XDG_CACHE_HOME:-~/.cache}/tsvisor)"
node bin/tsvisor.js image build </dev/null

if [ -t 0 ] && [ -t 1 ]; then
  step "booting the default guest (Ctrl-A X quits, Ctrl-A H shows the keys)"
  exec node bin/tsvisor.js run
fi

step "no terminal: booting the default guest once and powering it off"
exec bash scripts/boot-check.sh
