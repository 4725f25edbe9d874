// Translations shared between the harts of a VM (Jit.sharing): a hart
// thread's modules are hart-relative, offered to the other hart threads, and
// put back there at that hart's own table and link slots when one of their
// heads gets hot, if the guest bytes they were translated from are unchanged.
// Here two machines stand for two harts (one thread, one offering to the
// other); what the taking machine computes is compared with the interpreter
// after the same number of instructions. A real 2-hart boot that shares is in
// smp-threads.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { VirtMachine } from '../src/machine/virt.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import type { SharedBatch } from '../src/jit/jit.js';

const iType = (op: number, f3: number, rd: number, rs1: number, imm: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const addi = (rd: number, rs1: number, imm: number) => iType(0x13, 0, rd, rs1, imm);
const andi = (rd: number, rs1: number, imm: number) => iType(0x13, 7, rd, rs1, imm);
const branch = (f3: number, rs1: number, off: number) =>
  ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3f) << 25) | (rs1 << 15) | (f3 << 12) | (((off >> 1) & 0xf) << 8) | (((off >> 11) & 1) << 7) | 0x63) >>> 0;
const beqz = (rs1: number, off: number) => branch(0, rs1, off);
const bnez = (rs1: number, off: number) => branch(1, rs1, off);
const jump = (off: number) => ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3ff) << 21) | (((off >> 11) & 1) << 20) | (((off >> 12) & 0xff) << 12) | 0x6f) >>> 0;
const A0 = 10, A1 = 11, A2 = 12, A3 = 13, A4 = 14, T0 = 5, T1 = 6;

/** Where phase Y starts (a page of its own: a region of phase X does not take it in), in words. */
const Y_AT = 1024;
/** Word index of Y's `addi a3, a3, 7` (the instruction the second test changes). */
const Y_ADD = Y_AT + 3;
/**
 * M-mode. Phase X: a loop of two blocks and a skip, 20,480 times (about 113,000
 * instructions); then phase Y, another such loop in the next page, for ever.
 */
function program(yAdd = 7): Uint8Array {
  const x = [
    0x00005337, // lui t1, 5
    addi(A0, A0, 1), // X:
    andi(T0, A0, 1),
    beqz(T0, 8),
    addi(A1, A1, 3),
    addi(T1, T1, -1),
    bnez(T1, -20), // to X
    jump(4 * (Y_AT - 7)), // to Y
  ];
  const y = [
    addi(A2, A2, 1), // Y:
    andi(T0, A2, 3),
    bnez(T0, 8),
    addi(A3, A3, yAdd),
    addi(A4, A4, 1),
    jump(-20), // to Y
  ];
  const words = new Uint32Array(Y_AT + y.length);
  words.set(x);
  words.set(y, Y_AT);
  return new Uint8Array(words.buffer);
}
const Y_PC = 0x80000000n + 4n * BigInt(Y_AT);
const SLICE = 10_000;

function machine(bios: Uint8Array, jit: boolean) {
  const made = VirtMachine.create(new Uint8Array(readFileSync(defaultWasmPath())), { ramSize: 2 << 20, bios, bootargs: '', deterministic: true, jit }, {
    consoleOut: () => {}, power: () => {},
  });
  assert.ok(made.ok, made.ok ? '' : made.error);
  return made.machine;
}

/**
 * Hart "a" runs phase X, drops its translations and translates phase Y afresh
 * (so its Y module sits at the first table and link slots): the batches it
 * offers from then on.
 */
function offeredY(regions: 'user' | 'off' = 'user'): SharedBatch[] {
  const a = machine(program(), true);
  a.core.jit.regions = regions;
  const sent: SharedBatch[] = [];
  a.core.jit.sharing = { send: (b) => sent.push(b), receive: () => [] };
  for (let i = 0; i < 14; i++) a.runSlice(SLICE);
  assert.ok(a.core.pc >= Y_PC, 'hart a is in phase Y');
  assert.ok(sent.length > 0, 'hart a offered its translations of phase X');
  a.core.jit.dropAll();
  const from = sent.length;
  for (let i = 0; i < 10; i++) a.runSlice(SLICE);
  assert.ok(sent.length > from, 'hart a offered its translations of phase Y');
  return sent.slice(from);
}

const regs = (m: VirtMachine) => Array.from({ length: 31 }, (_, i) => m.core.getX(i + 1));

/**
 * Run the interpreter's machine up to the translated one's instruction count
 * (a translated run's slice may end early, e.g. to translate a hot loop at
 * once), then compare: same count, registers and pc.
 */
function sameAsInterpreter(jit: VirtMachine, interp: VirtMachine): void {
  for (let i = 0; i < 100 && interp.core.instret < jit.core.instret; i++) interp.runSlice(Number(jit.core.instret - interp.core.instret));
  assert.equal(interp.core.instret, jit.core.instret);
  assert.deepEqual(regs(jit), regs(interp), 'registers as the interpreter left them');
  assert.equal(jit.core.pc, interp.core.pc);
}

for (const regions of ['user', 'off'] as const) {
  test(`a hart takes the modules another hart translated, at its own slots, and computes what the interpreter does (regions: ${regions})`, () => {
    const offers = offeredY(regions);
    const b = machine(program(), true);
    b.core.jit.regions = regions;
    const c = machine(program(), false);
    let inbox: SharedBatch[] = [];
    b.core.jit.sharing = { send: () => {}, receive: () => inbox.splice(0) };
    // Phase X (until about 113,000 instructions): hart b translates it itself
    // (nothing of it is offered), which puts its table and link slots past where
    // hart a had phase Y's module; then hart a's offers arrive, before phase Y.
    for (let i = 0; i < 8; i++) b.runSlice(SLICE);
    assert.ok(b.core.jit.stats.translations > 0, 'hart b translated phase X');
    assert.ok(b.core.pc < Y_PC, 'hart b is still in phase X');
    const own = b.core.jit.stats.translations;
    inbox = offers;
    for (let i = 0; i < 36; i++) b.runSlice(SLICE);
    assert.ok(b.core.jit.stats.shared >= 1, 'hart b took phase Y from hart a');
    assert.ok(b.core.jit.stats.sharedBlocks >= 2);
    assert.equal(b.core.jit.stats.translations, own, 'and translated nothing of it');
    sameAsInterpreter(b, c);
    assert.ok(b.core.getX(A3) > 0n && b.core.getX(A4) > 1000n, 'phase Y ran');
  });
}

test('a module whose guest bytes changed since it was translated is not taken', () => {
  const offers = offeredY();
  const changed = program(5);
  assert.notDeepEqual(changed.subarray(Y_ADD * 4, Y_ADD * 4 + 4), program().subarray(Y_ADD * 4, Y_ADD * 4 + 4));
  const b = machine(changed, true);
  const c = machine(changed, false);
  b.core.jit.sharing = { send: () => {}, receive: () => offers.splice(0) };
  for (let i = 0; i < 44; i++) b.runSlice(SLICE);
  assert.equal(b.core.jit.stats.shared, 0, 'nothing taken');
  assert.ok(b.core.jit.stats.translations > 0, 'translated for itself');
  sameAsInterpreter(b, c);
  assert.equal(b.core.getX(A3) % 5n, 0n, 'the changed instruction ran');
});
