// Jit.hold (what a restored VM's worker sets for a moment): while held, a hot
// loop is not translated and still runs, interpreted; once released, the heads
// queued meanwhile are translated and the loop runs as translated code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { VirtMachine } from '../src/machine/virt.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

/** M-mode: addi a0,a0,1; addi a1,a1,2; j -8 (a hot loop). */
const LOOP = new Uint8Array(new Uint32Array([0x00150513, 0x00258593, 0xff9ff06f]).buffer);

test('a held translator translates nothing and the guest runs on; released, it translates', () => {
  const made = VirtMachine.create(new Uint8Array(readFileSync(defaultWasmPath())), { ramSize: 2 << 20, bios: LOOP, bootargs: '', deterministic: true, jit: true }, {
    consoleOut: () => {}, power: () => {},
  });
  assert.ok(made.ok, made.ok ? '' : made.error);
  const m = made.machine;
  // The boot leaves a0 = hart id and a1 = the device tree's address: the loop counts from there.
  const a0 = m.core.getX(10);
  const a1 = m.core.getX(11);
  // a1 moves twice as fast as a0; a slice may end between the two additions.
  const twice = () => {
    const lag = 2n * (m.core.getX(10) - a0) - (m.core.getX(11) - a1);
    return lag === 0n || lag === 2n;
  };
  m.core.jit.hold = true;
  for (let i = 0; i < 20; i++) m.runSlice(100_000);
  assert.equal(m.core.jit.stats.modules, 0, 'nothing translated while held');
  const held = m.core.getX(10) - a0;
  assert.ok(held > 100_000n, `the loop ran interpreted: ${held} times`);
  assert.ok(twice());
  m.core.jit.hold = false;
  for (let i = 0; i < 20; i++) m.runSlice(100_000);
  assert.ok(m.core.jit.stats.translations > 0, 'translated once released');
  assert.ok(m.core.getX(10) - a0 > held, 'it went on');
  assert.ok(twice(), 'the translated loop computes the same');
});
