// The migration stream codec: frames and page batches round-trip; corrupted,
// truncated and forged streams are refused with a MigrationStreamError (never
// another exception), and no page index outside guest RAM ever gets through.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FrameDecoder, FrameType, MigrationStreamError, PAGE_SIZE, decodeJson, decodePages, encodeFrame, encodeJson, encodePages, MAX_BATCH_PAGES,
} from '../src/vm/migration/stream.js';
import { applyPages } from '../src/vm/migration/worker-side.js';

const PAGES = 64;

function batch(indexes: number[], fill: (p: number) => number): Uint8Array {
  const data = new Uint8Array(indexes.length * PAGE_SIZE);
  indexes.forEach((_, i) => data.fill(fill(i), i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  return data;
}

test('frames and page batches round-trip, zero pages travel as a flag', () => {
  const idx = [3, 0, 63, 7];
  const data = batch(idx, (i) => (i === 1 ? 0 : i + 1));
  const payload = encodePages(idx, data);
  assert.equal(payload.length, 4 + 4 * 4 + 3 * PAGE_SIZE, 'the zero page carries no data');
  const stream = [encodeJson(FrameType.HELLO, { a: 1 }), encodeFrame(FrameType.PAGES, payload), encodeJson(FrameType.COMMIT, {})];
  const all = new Uint8Array(stream.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of stream) {
    all.set(f, at);
    at += f.length;
  }
  // Fed in awkward pieces: frames still come out whole.
  const dec = new FrameDecoder();
  const frames = [];
  for (let i = 0; i < all.length; i += 1000) frames.push(...dec.push(all.subarray(i, i + 1000)));
  assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO, FrameType.PAGES, FrameType.COMMIT]);
  assert.deepEqual(decodeJson(frames[0]), { a: 1 });
  const b = decodePages(frames[1].payload, PAGES);
  assert.deepEqual([...b.indexes], idx);
  const ram = new Uint8Array(PAGES * PAGE_SIZE).fill(0xee);
  applyPages(ram, b.indexes, b.offsets, b.data);
  assert.equal(ram[3 * PAGE_SIZE], 1);
  assert.equal(ram[0], 0, 'zero page written as zeros');
  assert.equal(ram[63 * PAGE_SIZE + 4095], 3);
  assert.equal(ram[7 * PAGE_SIZE], 4);
  assert.equal(ram[1 * PAGE_SIZE], 0xee, 'pages not in the batch untouched');
});

test('a page outside guest RAM, a bad count or a wrong length is refused', () => {
  const one = encodePages([5], batch([5], () => 9));
  assert.throws(() => decodePages(one, 5), /outside guest RAM/);
  const dv = new DataView(one.buffer);
  dv.setUint32(0, 0, true);
  assert.throws(() => decodePages(one, 64), /pages/);
  dv.setUint32(0, MAX_BATCH_PAGES + 1, true);
  assert.throws(() => decodePages(one, 64), /pages/);
  dv.setUint32(0, 1, true);
  assert.throws(() => decodePages(one.subarray(0, one.length - 1), 64), /bytes/);
  assert.throws(() => decodePages(new Uint8Array(2), 64), MigrationStreamError);
});

test('hostile streams: random corruption and truncation give clear errors, never a write outside RAM', () => {
  const good = [
    encodeJson(FrameType.HELLO, { magic: 'x', n: 1 }),
    encodeFrame(FrameType.PAGES, encodePages([1, 2, 60], batch([1, 2, 60], (i) => i * 7 + 1))),
    encodeJson(FrameType.STATE, { machine: { a: [1, 2, 3] } }),
  ];
  const stream = new Uint8Array(good.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of good) {
    stream.set(f, at);
    at += f.length;
  }
  fc.assert(
    fc.property(
      fc.array(fc.record({ pos: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }),
      fc.nat(),
      fc.nat(),
      (flips, cut, split) => {
        const s = stream.slice(0, (cut % stream.length) + 1);
        for (const f of flips) s[f.pos % s.length] ^= f.xor;
        const ram = new Uint8Array(PAGES * PAGE_SIZE);
        const dec = new FrameDecoder();
        try {
          const k = split % (s.length + 1);
          for (const f of [...dec.push(s.subarray(0, k)), ...dec.push(s.subarray(k))]) {
            if (f.type === FrameType.PAGES) {
              const b = decodePages(f.payload, PAGES);
              applyPages(ram, b.indexes, b.offsets, b.data);
            } else decodeJson(f);
          }
        } catch (e) {
          assert.ok(e instanceof MigrationStreamError, `unexpected ${String(e)}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
