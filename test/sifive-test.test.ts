import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SifiveTest } from '../src/devices/sifive-test.js';

test('test device decodes poweroff, reset and fail codes', () => {
  const calls: [string, number][] = [];
  const dev = new SifiveTest({ onPower: (k, c) => calls.push([k, c]) });
  dev.write(0, 4, 0x5555);
  dev.write(0, 4, 0x7777);
  dev.write(0, 4, (42 << 16) | 0x3333);
  dev.write(0, 4, 0xffff3333);
  dev.write(0, 4, 0x1234); // ignored
  dev.write(4, 4, 0x5555); // other offsets ignored
  assert.deepEqual(calls, [
    ['poweroff', 0],
    ['reset', 0],
    ['fail', 42],
    ['fail', 0xffff],
  ]);
  assert.equal(dev.read(0, 4), 0);
  assert.deepEqual(dev.restore(dev.save()), { ok: true });
});
