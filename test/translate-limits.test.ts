// How long a translated block may be: 256 instructions in general, up to 512
// for a block that branches back to its own head (a loop body longer than 256,
// like the kernel's unrolled SHA-256 rounds, would otherwise be two blocks
// chaining into each other every iteration instead of one wasm loop). What
// the code computes is checked against QEMU by user/jit_loop (guest-programs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translateBlock, MAX_LOOP_INSNS } from '../src/jit/translate.js';

const ADDI_A0 = 0x00150513; // addi a0, a0, 1

/** BNE a0, a1 back by `back` bytes. */
function bneBack(back: number): number {
  const imm = -back;
  return (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (11 << 20) | (10 << 15) | (1 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63;
}

/** `n` ADDIs, then (if `loop`) a BNE back to the first; one page at offset 0. */
function page(n: number, loop: boolean): Uint8Array {
  const words = new Uint32Array(1024);
  for (let i = 0; i < n; i++) words[i] = ADDI_A0;
  if (loop) words[n] = bneBack(4 * n) >>> 0;
  return new Uint8Array(words.buffer);
}

function translate(mem: Uint8Array) {
  const read16 = (a: number) => mem[a] | (mem[a + 1] << 8);
  return translateBlock(0x10000n, 0, read16, () => 0);
}

test('a loop body of 330 instructions is one block, through its back branch', () => {
  const t = translate(page(330, true));
  assert.ok(t);
  assert.equal(t.insns, 331);
});

test('straight-line code still ends a block at 256 instructions', () => {
  const t = translate(page(330, false));
  assert.ok(t);
  assert.equal(t.insns, 256);
});

test(`a loop longer than ${MAX_LOOP_INSNS} instructions is cut at ${MAX_LOOP_INSNS}, and then not a loop`, () => {
  const t = translate(page(600, true));
  assert.ok(t);
  assert.equal(t.insns, 256);
});
