// The shared words of hart threads (src/machine/hart-board.ts), without threads:
// remote-fence tickets keep working when the int32 request counter wraps (a
// hart that has received 2^31 fences), and the panic watch and translation-drop
// words carry what the device thread put there; a remote fence to a sleeping
// hart is posted without waking it or waiting for it; the scheduler's credit
// holds for the harts together.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HartBoard, FENCE_WORDS, FENCE_TLB, FENCE_CODE, WHERE_WFI, WHERE_STOPPED, WHERE_RUN, WHERE_SAFE_POINT, WHERE_DEVICE, WHERE_CREDIT } from '../src/machine/hart-board.js';

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

test('a remote fence to a sleeping hart is posted without a wakeup or a wait; to an awake one it is waited for', () => {
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
  for (const where of [WHERE_RUN, WHERE_SAFE_POINT, WHERE_DEVICE]) {
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
