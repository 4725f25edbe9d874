#!/usr/bin/env bash
# Build all tsvisor guest test programs into build/guest/{user,bare}/NAME.elf.
# Usage: test/guest/build.sh            (from anywhere; idempotent)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/build/guest"
CROSS="${CROSS:-riscv64-linux-gnu-}"
CC="${CROSS}gcc"
command -v "$CC" >/dev/null || { echo "build.sh: $CC not found" >&2; exit 1; }

FLAGS=(-march=rv64gc -mabi=lp64d -mcmodel=medany -static -no-pie -nostdlib
       -nostartfiles -ffreestanding -fno-pic -O2 -g -Wall
       -I "$HERE/include" -T "$HERE/link.ld" -Wl,--build-id=none -Wl,-z,noexecstack)

mkdir -p "$OUT/user" "$OUT/bare" "$OUT/linux" "$OUT/gdb"
n=0
build_one() { # kind src runtime
  local kind=$1 src=$2 rt=$3 name
  name="$(basename "${src%.*}")"
  "$CC" "${FLAGS[@]}" -o "$OUT/$kind/$name.elf.tmp.$$" ${rt:+"$rt"} "$src"
  mv -f "$OUT/$kind/$name.elf.tmp.$$" "$OUT/$kind/$name.elf"
  n=$((n+1))
}
shopt -s nullglob
for src in "$HERE"/user/*.S "$HERE"/user/*.c; do
  build_one user "$src" "$HERE/common/user_rt.S"
done
# Programs for booted guests (not run under qemu-user by the instruction tests).
for src in "$HERE"/linux/*.c; do
  build_one linux "$src" "$HERE/common/user_rt.S"
done
# Programs the debugger tests run under tsvisor and QEMU (test/gdb.test.ts).
for src in "$HERE"/gdb/*.S; do
  build_one gdb "$src" ""
done
for src in "$HERE"/bare/*.S "$HERE"/bare/*.c; do
  build_one bare "$src" "$HERE/common/bare_rt.S"
done
echo "build.sh: built $n programs into ${OUT#$ROOT/}"
