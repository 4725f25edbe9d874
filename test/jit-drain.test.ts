// When queued block heads are translated. On the worker, after DRAIN_SLICES
// slices; on a hart thread (Jit.drainInsns = HART_DRAIN_INSNS) also not before
// that many guest instructions have run since the first head waited, because a
// hart thread's slices end early and often and modules of a few blocks each
// made its translating cost nearly twice the worker's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { VirtMachine } from '../src/machine/virt.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { HART_DRAIN_INSNS } from '../src/jit/jit.js';

/** JAL x0 by `off` bytes. */
function jump(off: number): number {
  return ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3ff) << 21) | (((off >> 11) & 1) << 20) | (((off >> 12) & 0xff) << 12) | 0x6f) >>> 0;
}
/**
 * M-mode: 6,000 times addi a0,a0,1, then a jump back (a loop over six pages).
 * A head reached by a backward jump is translated at once after 1,024 runs
 * more (an urgent loop); this loop's head gets there only after more than
 * HART_DRAIN_INSNS, and its other heads (page crossings) never do.
 */
const BODY = 6000;
const LOOP = new Uint8Array(new Uint32Array([...new Array<number>(BODY).fill(0x00150513), jump(-4 * BODY)]).buffer);
const SLICE = 100_000;

function machine() {
  const made = VirtMachine.create(new Uint8Array(readFileSync(defaultWasmPath())), { ramSize: 2 << 20, bios: LOOP, bootargs: '', deterministic: true, jit: true }, {
    consoleOut: () => {}, power: () => {},
  });
  assert.ok(made.ok, made.ok ? '' : made.error);
  return made.machine;
}

test('by default a hot head is translated within a few slices', () => {
  const m = machine();
  for (let i = 0; i < 12; i++) m.runSlice(SLICE);
  assert.equal(m.core.jit.stats.modules, 1);
});

test('with drainInsns, a hot head waits for that many instructions, then is translated', () => {
  const m = machine();
  m.core.jit.drainInsns = HART_DRAIN_INSNS;
  const slices = Number(HART_DRAIN_INSNS) / SLICE;
  for (let i = 0; i < slices / 2; i++) m.runSlice(SLICE);
  assert.equal(m.core.jit.stats.modules, 0, `nothing translated after ${slices / 2} slices`);
  for (let i = 0; i < slices; i++) m.runSlice(SLICE);
  assert.equal(m.core.jit.stats.modules, 1, 'translated once the instructions have run');
  assert.ok(m.core.jit.stats.translations >= 1);
});
