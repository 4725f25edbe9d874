#!/usr/bin/env bash
# Run every guest test program under QEMU (the oracle) and save the outputs
# to build/guest/expected/{user,bare}/NAME.out (+ NAME.rc with the exit code).
# User programs: qemu-riscv64. Bare programs: qemu-system-riscv64 -M virt -icount shift=0.
# A reference is kept only when QEMU exited normally and the program reported
# its end marker (user: last line "== done", status 0; bare: test device 0x5555,
# i.e. QEMU status 0, "== ALL PASS" and no "FAIL" line). Outputs go to temporary
# files first; a failed run removes the program's old reference (so the next
# run rebuilds it) and leaves its output as NAME.failed.out for reading.
# Usage: test/guest/check-qemu.sh [NAME...]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
B="$ROOT/build/guest"
TMO="${TIMEOUT:-120}"
"$HERE/build.sh" || exit 1
mkdir -p "$B/expected/user" "$B/expected/bare"
want() { [ ${#FILTER[@]} -eq 0 ] && return 0; local n; for n in "${FILTER[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
FILTER=("$@")
fail=0; total=0

# keep DIR NAME: move the temporary outputs into place as the reference.
keep() {
  local d=$1 n=$2
  mv -f "$d/$n.err.tmp" "$d/$n.err"
  mv -f "$d/$n.out.tmp" "$d/$n.out"
  mv -f "$d/$n.rc.tmp" "$d/$n.rc"   # last: the test treats .out and .rc as the pair
  rm -f "$d/$n.failed.out"
}
# discard DIR NAME: no reference for this program until a run succeeds.
discard() {
  local d=$1 n=$2
  rm -f "$d/$n.out" "$d/$n.rc" "$d/$n.err" "$d/$n.rc.tmp" "$d/$n.err.tmp"
  mv -f "$d/$n.out.tmp" "$d/$n.failed.out"
}

for elf in "$B"/user/*.elf; do
  name="$(basename "$elf" .elf)"; want "$name" || continue
  total=$((total+1))
  d="$B/expected/user"
  timeout "$TMO" qemu-riscv64 "$elf" >"$d/$name.out.tmp" 2>"$d/$name.err.tmp"
  rc=$?; echo "$rc" >"$d/$name.rc.tmp"
  if [ $rc -ne 0 ] || ! tail -n1 "$d/$name.out.tmp" | grep -qx "== done"; then
    why="rc=$rc"; [ $rc -eq 124 ] && why="timed out after ${TMO}s"
    echo "FAIL user/$name ($why; output in ${d#$ROOT/}/$name.failed.out)"; fail=$((fail+1))
    discard "$d" "$name"
  else
    keep "$d" "$name"
    echo "ok   user/$name ($(wc -l <"$d/$name.out") lines)"
  fi
done
for elf in "$B"/bare/*.elf; do
  name="$(basename "$elf" .elf)"; want "$name" || continue
  total=$((total+1))
  d="$B/expected/bare"
  # -icount: QEMU's time follows its instruction count, so timer programs see the
  # same interrupts however loaded the host is (with the host clock, a starved
  # QEMU once finished a hot loop before its timer fired). A failed run gets one
  # more try before it counts.
  for try in 1 2; do
    timeout "$TMO" qemu-system-riscv64 -M virt -m 128M -nographic -bios none -icount shift=0 \
      -kernel "$elf" </dev/null >"$d/$name.raw.tmp" 2>"$d/$name.err.tmp"
    rc=$?; echo "$rc" >"$d/$name.rc.tmp"
    tr -d '\r' <"$d/$name.raw.tmp" >"$d/$name.out.tmp"; rm -f "$d/$name.raw.tmp"
    bare_ok() { [ $rc -eq 0 ] && ! grep -q "^FAIL" "$d/$name.out.tmp" && grep -qx "== ALL PASS" "$d/$name.out.tmp"; }
    bare_ok && break
    [ $try = 1 ] && echo "retry bare/$name (rc=$rc)"
  done
  if ! bare_ok; then
    why="rc=$rc"; [ $rc -eq 124 ] && why="timed out after ${TMO}s"
    echo "FAIL bare/$name ($why; output in ${d#$ROOT/}/$name.failed.out)"; grep "^FAIL" "$d/$name.out.tmp" | head -20
    fail=$((fail+1))
    discard "$d" "$name"
  else
    keep "$d" "$name"
    echo "ok   bare/$name ($(grep -c '^PASS' "$d/$name.out") checks)"
  fi
done
echo "check-qemu.sh: $((total-fail))/$total passed; outputs in ${B#$ROOT/}/expected"
[ $fail -eq 0 ]
