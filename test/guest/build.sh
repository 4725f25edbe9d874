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
same_program() { # elf elf: the same code and data
  local a="$1.bin.$$" b="$2.bin.$$" r=1
  if "${CROSS}objcopy" -O binary "$1" "$a" 2>/dev/null && "${CROSS}objcopy" -O binary "$2" "$b" 2>/dev/null && cmp -s "$a" "$b"; then r=0; fi
  rm -f "$a" "$b"
  return $r
}
build_one() { # kind src runtime
  local kind=$1 src=$2 rt=$3 name
  name="$(basename "${src%.*}")"
  local tmp="$OUT/$kind/$name.elf.tmp.$$" elf="$OUT/$kind/$name.elf"
  "$CC" "${FLAGS[@]}" -o "$tmp" ${rt:+"$rt"} "$src"
  # An unchanged program keeps its file and its time: test files build the
  # programs concurrently, and a newer ELF makes QEMU's reference look stale.
  # Compared by loaded contents: the debug info names the compiler's temporary files.
  # (An ELF older than an input is replaced even so: the tests judge freshness by time.)
  if [ -f "$elf" ] && [ -z "$(find "$src" ${rt:+"$rt"} "$HERE/include" "$HERE/common" "$HERE/link.ld" "$HERE/build.sh" "$HERE/check-qemu.sh" -newer "$elf" -print -quit)" ] \
    && same_program "$tmp" "$elf"; then rm -f "$tmp"; else mv -f "$tmp" "$elf"; fi
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
