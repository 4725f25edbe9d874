// A watched range as Sdtrig NAPOT triggers (src/vm/trigger-cover.ts): every
// cover holds the range, is a power of two aligned to its size and is the
// smallest such; a second trigger is spent only on a loose cover and then
// holds fewer bytes; bad ranges are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { coverRange, napotCover, overlaps } from '../src/vm/trigger-cover.js';

const isNapot = (r: { address: bigint; length: bigint }) => r.length > 0n && (r.length & (r.length - 1n)) === 0n && r.address % r.length === 0n;
const addr = fc.bigInt({ min: 0n, max: (1n << 64n) - 0x20000n });
const len = fc.bigInt({ min: 1n, max: 0x10000n });

test('the cover of a range is the smallest aligned power of two holding it', () => {
  fc.assert(fc.property(addr, len, (a, l) => {
    const c = napotCover(a, l);
    assert.ok(isNapot(c));
    assert.ok(c.address <= a && a + l <= c.address + c.length, 'holds the range');
    if (c.length > 1n) {
      const half = c.length / 2n;
      const base = a - (a % half);
      assert.ok(l > half || base + half < a + l, 'half the size would not hold it');
    }
  }));
  assert.deepEqual(napotCover(0x1000n, 8n), { address: 0x1000n, length: 8n });
  assert.deepEqual(napotCover(0x1004n, 8n), { address: 0x1000n, length: 16n });
  assert.deepEqual(napotCover(0x1ffcn, 8n), { address: 0n, length: 0x4000n });
});

test('a second trigger only for a loose cover, and then tighter; ranges stay covered', () => {
  fc.assert(fc.property(addr, len, fc.integer({ min: 1, max: 4 }), (a, l, free) => {
    const rs = coverRange(a, l, free);
    assert.ok(rs.length === 1 || (rs.length === 2 && free >= 2));
    for (const r of rs) assert.ok(isNapot(r));
    // Every byte of the range is in some trigger (checked at the ends and the boundary).
    for (const b of [a, a + l - 1n, ...rs.map((r) => r.address)].filter((x) => x >= a && x < a + l)) {
      assert.ok(rs.some((r) => overlaps(r.address, r.length, b, 1n)), `byte ${b} covered`);
    }
    if (rs.length === 2) {
      assert.ok(rs[0].length + rs[1].length < napotCover(a, l).length);
      assert.ok(rs[0].address + rs[0].length <= rs[1].address, 'the two do not overlap');
    }
  }));
  assert.equal(coverRange(0x2000n, 12n, 4).length, 1, '12 bytes in a 16-byte cover: one trigger');
  assert.deepEqual(coverRange(0x1ffcn, 8n, 2), [{ address: 0x1ffcn, length: 4n }, { address: 0x2000n, length: 4n }]);
  assert.deepEqual(coverRange(0x1ffcn, 8n, 1), [{ address: 0n, length: 0x4000n }], 'one free trigger: one loose cover');
});

test('bad ranges are refused', () => {
  assert.throws(() => napotCover(0n, 0n), RangeError);
  assert.throws(() => napotCover(-1n, 4n), RangeError);
  assert.throws(() => napotCover((1n << 64n) - 4n, 8n), RangeError);
  assert.deepEqual(napotCover((1n << 64n) - 8n, 8n), { address: (1n << 64n) - 8n, length: 8n });
});
