// The daemon's warm worker (src/vm/warm-worker.ts): a VM worker thread started
// ahead of need. A VM handed to it runs as on a worker of its own; the pool
// then has none until it refills; a VM with other heap limits or another
// worker script does not take it; a closed pool hands out nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { VmHandle, defaultWasmPath, defaultWorkerUrl } from '../src/vm/vm-handle.js';
import { WarmWorkers } from '../src/vm/warm-worker.js';
import { SPIN_KERNEL } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const LIMITS = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 };

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

test('a VM runs on the warm worker; the pool refills, matches limits, and closes', { timeout: budget(120_000) }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-warm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kernel = join(dir, 'spin');
  writeFileSync(kernel, SPIN_KERNEL);
  const warm = new WarmWorkers(defaultWorkerUrl(), defaultWasmPath(), LIMITS);
  t.after(() => warm.close());

  assert.equal(warm.take(defaultWorkerUrl(), { ...LIMITS, maxOldGenerationSizeMb: 512 }), null, 'other heap limits: no warm worker');
  assert.equal(warm.take(new URL('./other.js', defaultWorkerUrl()), LIMITS), null, 'another worker script: no warm worker');

  const vm = new VmHandle({ kernel, append: '', memMiB: 16, deterministic: true, wasmPath: defaultWasmPath() }, { warm, resourceLimits: LIMITS });
  vm.start();
  try {
    assert.equal(warm.take(defaultWorkerUrl(), LIMITS), null, 'the VM took the one warm worker');
    await until('the guest to run on the handed-over worker', () => vm.live().instret > 10_000_000n, budget(60_000));
    // Refilled a moment after the take (REFILL_DELAY_MS).
    let next = null;
    await until('the pool to refill', () => (next ??= warm.take(defaultWorkerUrl(), LIMITS)) !== null, budget(30_000));
    await next!.terminate();
  } finally {
    const r = await vm.stop();
    assert.equal(r.code, 0, r.reason);
  }
  await warm.close();
  assert.equal(warm.take(defaultWorkerUrl(), LIMITS), null, 'a closed pool hands out nothing');
});
