#!/usr/bin/env bash
# Run every guest test program under QEMU (the oracle) and save the outputs
# to build/guest/expected/{user,bare}/NAME.out (+ NAME.rc with the exit code).
# User programs: qemu-riscv64. Bare programs: qemu-system-riscv64 -M virt.
# Bare programs must exit through the test device with 0x5555 (QEMU exit
# status 0) and print no "FAIL" line. Usage: test/guest/check-qemu.sh [NAME...]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
B="$ROOT/build/guest"
TMO="${TIMEOUT:-30}"
"$HERE/build.sh" || exit 1
mkdir -p "$B/expected/user" "$B/expected/bare"
want() { [ ${#FILTER[@]} -eq 0 ] && return 0; local n; for n in "${FILTER[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
FILTER=("$@")
fail=0; total=0
for elf in "$B"/user/*.elf; do
  name="$(basename "$elf" .elf)"; want "$name" || continue
  total=$((total+1))
  out="$B/expected/user/$name.out"
  timeout "$TMO" qemu-riscv64 "$elf" >"$out" 2>"$B/expected/user/$name.err"
  rc=$?; echo "$rc" >"$B/expected/user/$name.rc"
  if [ $rc -ne 0 ] || ! tail -n1 "$out" | grep -qx "== done"; then
    echo "FAIL user/$name (rc=$rc)"; fail=$((fail+1))
  else
    echo "ok   user/$name ($(wc -l <"$out") lines)"
  fi
done
for elf in "$B"/bare/*.elf; do
  name="$(basename "$elf" .elf)"; want "$name" || continue
  total=$((total+1))
  out="$B/expected/bare/$name.out"
  timeout "$TMO" qemu-system-riscv64 -M virt -m 128M -nographic -bios none \
    -kernel "$elf" </dev/null >"$out.raw" 2>"$B/expected/bare/$name.err"
  rc=$?; echo "$rc" >"$B/expected/bare/$name.rc"
  tr -d '\r' <"$out.raw" >"$out"; rm -f "$out.raw"
  if [ $rc -ne 0 ] || grep -q "^FAIL" "$out" || ! grep -qx "== ALL PASS" "$out"; then
    echo "FAIL bare/$name (rc=$rc)"; grep "^FAIL" "$out" | head -20; fail=$((fail+1))
  else
    echo "ok   bare/$name ($(grep -c '^PASS' "$out") checks)"
  fi
done
echo "check-qemu.sh: $((total-fail))/$total passed; outputs in ${B#$ROOT/}/expected"
[ $fail -eq 0 ]
