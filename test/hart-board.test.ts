// The shared words of hart threads (src/machine/hart-board.ts), without threads:
// remote-fence tickets keep working when the int32 request counter wraps (a
// hart that has received 2^31 fences), and the panic watch and translation-drop
// words carry what the device thread put there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HartBoard, FENCE_WORDS } from '../src/machine/hart-board.js';

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
