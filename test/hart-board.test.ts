// The shared words of hart threads (src/machine/hart-board.ts), without threads:
// remote-fence tickets keep working when the int32 request counter wraps (a
// hart that has received 2^31 fences), and the panic watch and translation-drop
// words carry what the device thread put there; a remote fence to a hart that
// runs no guest code (asleep, or between slices) is posted without waking it or
// waiting for it; the scheduler's credit holds for the harts together. And a
// hart's slices grow with its speed: a
// translated hot loop on a HartRunner runs slices of far more than the old
// fixed 100,000 instructions (which cost a hart thread about 10% of its time).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HartBoard, FENCE_WORDS, FENCE_TLB, FENCE_CODE, WHERE_WFI, WHERE_STOPPED, WHERE_RUN, WHERE_SAFE_POINT, WHERE_DEVICE, WHERE_CREDIT, WHERE_TRANSLATING, WHERE_FENCE_WAIT, HSM_STARTED } from '../src/machine/hart-board.js';
import { HartRunner, nextSlice, HART_SLICE_MIN, HART_SLICE_MAX, SLICE_TARGET_US } from '../src/machine/hart-runner.js';
import { CpuCore } from '../src/machine/cpu-core.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

test('fence tickets are acknowledged across the int32 wrap of the request counter', () => {
  const init = HartBoard.create(2);
  const b = new HartBoard(init);
  // Hart 1's request and acknowledgement counters.
  const i32 = new Int32Array(init.sab);
  const req = FENCE_WORDS.perHart + FENCE_WORDS.req;
  const ack = FENCE_WORDS.perHart + FENCE_WORDS.ack;
  for (const start of [0x7fff_fffe, -1, 0]) {
    i32[req] = start;
    i32[ack] = start;
    for (let n = 0; n < 4; n++) {
      const t = b.requestFence(1, true);
      assert.equal(b.fenceAcked(1, t), false, `ticket ${t} (from ${start}) is not acknowledged yet`);
      const due = b.fenceDue(1);
      assert.equal(due, t);
      b.ackFence(1, due!);
      assert.equal(b.fenceAcked(1, t), true, `ticket ${t} (from ${start}) is acknowledged`);
      assert.equal(b.fenceDue(1), null);
    }
  }
});

test('a remote TLB fence carries its range: one range is flushed as such, two or one without a range flush everything', () => {
  const b = new HartBoard(HartBoard.create(2));
  const r1 = { start: 0xffff_ffd6_0000_3000n, size: 0x2000n };
  const take = () => (b.takeFenceKind(1) & FENCE_TLB ? b.takeFenceRange(1) : 'no TLB fence');
  b.requestFence(1, true, r1);
  assert.deepEqual(take(), r1, 'one range, with its upper-half address intact');
  b.requestFence(1, true, r1);
  b.requestFence(1, true, { start: 0x1000n, size: 0x1000n });
  assert.equal(take(), null, 'two ranges: everything');
  b.requestFence(1, true, r1);
  b.requestFence(1, true);
  assert.equal(take(), null, 'a range and a fence of everything: everything');
  b.requestFence(1, true);
  b.requestFence(1, true, r1);
  assert.equal(take(), null, 'everything, then a range: everything');
  b.requestFence(1, false);
  assert.equal(take(), 'no TLB fence', 'fence.i asks for no TLB flush');
  b.requestFence(1, true, r1);
  b.requestFence(1, false);
  assert.deepEqual(take(), r1, 'a fence.i leaves the range alone');
  b.requestFence(1, true, r1);
  assert.deepEqual(take(), r1, 'each look starts afresh');
});

test('the panic watch and the translation drop reach a hart through the board', () => {
  const b = new HartBoard(HartBoard.create(2));
  const w0 = b.panicWatchWord();
  b.watchPanic([0xffff_ffff_8000_1000n, 0xffff_ffff_8000_2000n]);
  const w1 = b.panicWatchWord();
  assert.notEqual(w1, w0);
  assert.deepEqual(b.panicWatchVas(w1), [0xffff_ffff_8000_1000n, 0xffff_ffff_8000_2000n]);
  const d0 = b.jitDropWord();
  b.requestJitDrop();
  assert.notEqual(b.jitDropWord(), d0);
  b.setJitIdle(true);
  assert.equal(b.jitIdle(), true);
});

test('a remote fence to a hart that runs no guest code now (asleep, between slices) is posted without a wakeup or a wait; to a running one it is waited for', () => {
  const b = new HartBoard(HartBoard.create(2));
  b.setWhere(1, WHERE_WFI);
  const wake0 = b.wakeSeen(1);
  assert.equal(b.requestFenceUnlessAsleep(1, true), null, 'asleep in WFI: nothing to wait for');
  assert.equal(b.wakeSeen(1), wake0, 'the sleeping hart was not woken');
  // It still finds the request at its next safe point, before it runs guest code.
  const due = b.fenceDue(1);
  assert.notEqual(due, null);
  assert.equal(b.takeFenceKind(1), FENCE_TLB);
  b.ackFence(1, due!);
  b.setWhere(1, WHERE_STOPPED);
  assert.equal(b.requestFenceUnlessAsleep(1, false), null, 'stopped: nothing to wait for');
  b.ackFence(1, b.fenceDue(1)!);
  b.takeFenceKind(1);
  // Between slices (a safe point, translating, waiting for credit) the hart runs no guest
  // code before it reads its requests: posted, not waited for, not woken.
  for (const where of [WHERE_SAFE_POINT, WHERE_TRANSLATING, WHERE_CREDIT]) {
    b.setWhere(1, where);
    const w = b.wakeSeen(1);
    assert.equal(b.requestFenceUnlessAsleep(1, true), null, `where ${where}: nothing to wait for`);
    assert.equal(b.wakeSeen(1), w, `where ${where}: not woken`);
    b.ackFence(1, b.fenceDue(1)!);
    assert.equal(b.takeFenceKind(1), FENCE_TLB);
  }
  // Running guest code, or inside an instruction (a device access, an SBI call waiting for fences): waited for.
  for (const where of [WHERE_RUN, WHERE_DEVICE, WHERE_FENCE_WAIT]) {
    b.setWhere(1, where);
    const w = b.wakeSeen(1);
    const t = b.requestFenceUnlessAsleep(1, false);
    assert.notEqual(t, null, `where ${where}: the caller waits`);
    assert.notEqual(b.wakeSeen(1), w, `where ${where}: the hart is woken`);
    assert.equal(b.fenceAcked(1, t!), false);
    b.ackFence(1, b.fenceDue(1)!);
    assert.equal(b.fenceAcked(1, t!), true);
    assert.equal(b.takeFenceKind(1), FENCE_CODE);
  }
});

test('the credit limit counts the harts together, wakes only harts waiting for it, and rings the device thread', () => {
  const bell = new Int32Array(new SharedArrayBuffer(4));
  const b = new HartBoard(HartBoard.create(2, { words: bell, index: 0 }));
  assert.equal(b.creditLeft(), null, 'no limit until the device thread sets one');
  b.setCreditLimit(1000n);
  b.setInstret(0, 300n, 0n);
  b.setInstret(1, 500n, 0n);
  assert.equal(b.creditLeft(), 200n, 'the limit is on the sum of both harts');
  b.setInstret(1, 800n, 0n);
  assert.equal(b.creditLeft(), -100n);
  // Hart 0 waits for credit, hart 1 runs: a new limit wakes hart 0 only.
  b.setWhere(0, WHERE_CREDIT);
  b.setWhere(1, WHERE_RUN);
  const seen = [b.wakeSeen(0), b.wakeSeen(1)];
  b.setCreditLimit(2000n);
  assert.notEqual(b.wakeSeen(0), seen[0], 'the waiting hart is woken');
  assert.equal(b.wakeSeen(1), seen[1], 'the running hart is left alone');
  assert.equal(b.creditLeft(), 900n);
  b.setCreditLimit(null);
  assert.equal(b.creditLeft(), null);
  b.ringDevice();
  assert.equal(bell[0], 1);
});

test('a slice aims at SLICE_TARGET_US of host time at the measured speed, within its bounds, growing at most twofold', () => {
  // 1,000 instructions per us: SLICE_TARGET_US asks for 500,000, but the budget at most doubles.
  assert.equal(nextSlice(HART_SLICE_MIN, HART_SLICE_MIN, HART_SLICE_MIN / 1000), 2 * HART_SLICE_MIN);
  assert.equal(nextSlice(400_000, 400_000, 400), 1000 * SLICE_TARGET_US);
  assert.equal(nextSlice(HART_SLICE_MIN, HART_SLICE_MIN, HART_SLICE_MIN / 10), HART_SLICE_MIN, '10 per us: 5,000 wanted, the minimum given');
  assert.equal(nextSlice(HART_SLICE_MAX, HART_SLICE_MAX, 10), HART_SLICE_MAX, 'never above the maximum');
  assert.equal(nextSlice(HART_SLICE_MAX, HART_SLICE_MAX, 1e6), HART_SLICE_MIN, 'a slow slice shrinks the next at once, to the minimum at most');
  assert.equal(nextSlice(1_000_000, 1_000_000, 4 * SLICE_TARGET_US), 250_000);
  assert.equal(nextSlice(1_000_000, 10, 5), 1_000_000, 'a short slice that left early says nothing');
  assert.equal(nextSlice(1_000_000, 500_000, 4 * SLICE_TARGET_US), 125_000, 'one that left early after a long time does');
  assert.equal(nextSlice(HART_SLICE_MIN, HART_SLICE_MIN, 0), 2 * HART_SLICE_MIN);
});

test('a hart running a translated hot loop on a HartRunner takes slices far longer than the minimum', () => {
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const RAM = 1 << 20;
  const host = { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => runner?.ecall() };
  // The device thread's core makes the memory and puts the hart in its slot: M-mode at the loop.
  const first = new CpuCore(wasm, RAM, host);
  // loop: addi a0, a0, 1; addi a1, a1, 3; j loop
  [0x00150513, 0x00358593, 0xff9ff06f].forEach((w, i) => first.ram.set([w & 0xff, (w >> 8) & 0xff, (w >> 16) & 0xff, w >>> 24], i * 4));
  first.reset(BigInt(RAM_BASE), 0);
  first.exports.hartSetCount(1);
  first.exports.hartSaveTo(0);
  const board = new HartBoard(HartBoard.create(1));
  board.setHsm(0, HSM_STARTED);
  const core = new CpuCore(wasm, RAM, host, { memory: first.memory, hart: 0 });
  const target = 2_000_000_000n;
  const t0 = performance.now();
  let runner: HartRunner | null = null;
  runner = new HartRunner(core, board, {
    // Called at every safe point: the test ends the run once the hart has run its instructions.
    nowTicks: () => {
      if (core.instret >= target || performance.now() - t0 > 120_000) board.end();
      return BigInt(Math.floor((performance.now() - t0) * 10_000));
    },
    consoleWrite: () => {},
    consoleReadByte: () => -1,
    systemReset: () => board.end(),
  }, { hart: 0, jit: true, ecallHookMask: 0, panicVas: [] });
  runner.run();
  const slices = board.loopCounts(0).slices;
  const ran = board.instret(0);
  assert.ok(ran >= target, `the loop ran ${ran} instructions`);
  const per = Number(ran) / slices;
  console.log(`${slices} slices, ${Math.round(per)} instructions per slice`);
  // A fixed slice of HART_SLICE_MIN made at least ran / HART_SLICE_MIN of them.
  assert.ok(per > 2 * HART_SLICE_MIN, `${slices} slices for ${ran} instructions: ${Math.round(per)} each`);
});
