// The owner's control of a running VM through the shared control block: live
// counters, pause/resume, and the instruction credit the host scheduler hands
// out. Boots the real default guest (deterministic) in a worker via VmHandle.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { VmHandle, defaultWasmPath } from '../src/vm/vm-handle.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { RUN_STATE_PAUSED, RUN_STATE_THROTTLED } from '../src/vm/protocol.js';
import { budget } from './lib/budget.js';

async function until(what: string, cond: () => boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

test('live counters, pause/resume and instruction credit', { timeout: budget(300_000) }, async () => {
  const guest = await ensureDefaultGuest({});
  const vm = new VmHandle({
    kernel: guest.kernel, initrd: guest.initrd, append: 'console=ttyS0', memMiB: 128,
    deterministic: true, wasmPath: defaultWasmPath(),
  });
  vm.start();
  try {
    await until('50M instructions', () => vm.live().instret > 50_000_000n);
    const hb = vm.live().heartbeatMs;
    assert.ok(Math.abs(hb - Date.now()) < 5000, 'heartbeat is recent');
    assert.ok(vm.live().busyUs > 0, 'host time used is counted');

    vm.pause();
    await until('paused state', () => vm.live().state === RUN_STATE_PAUSED, 10_000);
    const a = vm.live().instret;
    await delay(300);
    assert.equal(vm.live().instret, a, 'a paused guest retires no instructions');

    // Credit: the guest runs exactly up to it, then waits for more.
    const credit = a + 5_000_000n;
    vm.setCredit(credit);
    vm.resume();
    await until('throttled state', () => vm.live().state === RUN_STATE_THROTTLED, 30_000);
    const b = vm.live().instret;
    assert.ok(b >= credit && b < credit + 10_000n, `stopped at ${b}, credit ${credit}`);
    await delay(300);
    assert.equal(vm.live().instret, b, 'no instructions beyond the credit');

    vm.setCredit(-1n);
    await until('running again', () => vm.live().instret > b + 1_000_000n, 30_000);
  } finally {
    await vm.stop();
  }
});
