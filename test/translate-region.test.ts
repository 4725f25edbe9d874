// Planning regions (src/jit/translate.ts, planRegion): the blocks a hot head
// reaches inside its page become one region only when some of them lead from
// one to another in a cycle. What a region computes is checked against QEMU by
// user/jit_region (guest-programs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRegion, type ModuleExits } from '../src/jit/translate.js';
import { stronglyConnected } from '../src/jit/regions.js';

const ADDI_A0 = 0x00150513; // addi a0, a0, 1
const JALR_RET = 0x00008067; // ret

function jal(off: number): number {
  return ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3ff) << 21) | (((off >> 11) & 1) << 20) | (((off >> 12) & 0xff) << 12) | 0x6f) >>> 0;
}
function bne(off: number): number { // bne a0, a1, off
  return ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3f) << 25) | (11 << 20) | (10 << 15) | (1 << 12) |
    (((off >> 1) & 0xf) << 8) | (((off >> 11) & 1) << 7) | 0x63) >>> 0;
}

/** Words at offset 0 of a page; the rest is ret. */
function page(words: number[]): (a: number) => number {
  const w = new Uint32Array(1024).fill(JALR_RET);
  w.set(words);
  const b = new Uint8Array(w.buffer);
  return (a) => b[a] | (b[a + 1] << 8);
}

// Function indices only: planning emits code it throws away.
const EXITS: ModuleExits = { exitFunc: 40, firstFunc: 22, base: 16, count: 1, slowLoad: 41, slowLoadOld: 42, slowStore: 43 };
const plan = (words: number[]) => planRegion(0x10000n, 0, page(words), () => 0, EXITS);

test('two blocks that jump to each other are a region of two blocks', () => {
  // 0: addi; j 8   8: addi; bne 0 (back to the first block); ret
  const p = plan([ADDI_A0, jal(4), ADDI_A0, bne(-12)]);
  assert.ok(p, 'a region');
  assert.deepEqual(p.plans.map((b) => b.pc), [0x10000n, 0x10008n]);
  assert.equal(p.plans[0].insns, 2);
});

test('code that only runs forward is no region', () => {
  assert.equal(plan([ADDI_A0, jal(8), ADDI_A0, ADDI_A0, bne(8)]), null);
});

test('a block that only loops to itself is left to the loop block', () => {
  // 0: addi; bne 0; ret (its only other target is outside the loop)
  assert.equal(plan([ADDI_A0, bne(-4)]), null);
});

test('strongly connected components', () => {
  const comps = stronglyConnected([[1], [2], [0, 3], [3], []]).map((c) => c.sort()).sort((a, b) => a[0] - b[0]);
  assert.deepEqual(comps, [[0, 1, 2], [3], [4]]);
});
