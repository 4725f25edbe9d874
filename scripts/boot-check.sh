#!/usr/bin/env bash
# Boot the default guest without a terminal, power it off from its shell once it
# is ready, and exit with tsvisor's status (0 after a clean poweroff).
# Used by scripts/setup.sh when it has no terminal. Extra arguments go to `tsvisor run`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ready_line="tsvisor guest ready"   # printed by the default guest's init (src/image/initramfs.ts)
boot_limit="${TSVISOR_BOOT_CHECK_LIMIT:-900}"   # seconds for the whole boot and poweroff

coproc VM { exec node bin/tsvisor.js run --net none "$@" 2>&1; }
vm_pid=$VM_PID
# Keep our own copies of the coprocess's pipes: bash drops VM[] when it ends.
exec {from_vm}<&"${VM[0]}" {to_vm}>&"${VM[1]}"
trap 'kill "$vm_pid" 2>/dev/null || true' EXIT

ready=0 asked=0 start=$SECONDS
while :; do
  line=""
  if IFS= read -r -t 5 line <&"$from_vm"; then
    printf '%s\n' "$line"
    case "$line" in *"$ready_line"*) ready=1 ;; esac
  else
    st=$?
    [ -n "$line" ] && printf '%s' "$line"
    [ "$st" -le 128 ] && break   # end of output: tsvisor has exited
    # Five quiet seconds after the ready line: the shell waits for input. Typed
    # earlier, the command can be lost when the shell sets up its line editor.
    if [ "$ready" = 1 ]; then
      asked=$((asked + 1))
      printf 'poweroff\n' >&"$to_vm"
    fi
  fi
  if [ $((SECONDS - start)) -gt "$boot_limit" ]; then
    if [ "$ready" = 1 ]; then
      echo "boot-check: the guest did not power off within ${boot_limit}s (asked $asked times)" >&2
    else
      echo "boot-check: no \"$ready_line\" within ${boot_limit}s" >&2
    fi
    exit 1
  fi
done
rc=0
wait "$vm_pid" || rc=$?
trap - EXIT
if [ "$ready" != 1 ]; then
  echo "boot-check: tsvisor exited with $rc before the guest was ready" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "boot-check: tsvisor exited with $rc after poweroff (expected 0)" >&2
  exit "$rc"
fi
echo "boot-check: the default guest booted to its shell and powered off cleanly"
