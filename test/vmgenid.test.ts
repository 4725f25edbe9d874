import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmGenId } from '../src/devices/vmgenid.js';
import { buildVirtFdt } from '../src/machine/virt-fdt.js';
import { VMGENID_BASE } from '../src/machine/layout.js';

const bytes = (...v: number[]) => Uint8Array.from(v);
const ID1 = bytes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
const ID2 = bytes(0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f);

test('vmgenid serves its 16 bytes little-endian at any width and nothing past them', () => {
  const lines: boolean[] = [];
  const d = new VmGenId((l) => lines.push(l), ID1);
  assert.equal(d.read(0, 4), 0x04030201);
  assert.equal(d.read(12, 4), 0x100f0e0d);
  assert.equal(d.read(6, 2), 0x0807);
  assert.equal(d.read(15, 1), 16);
  assert.equal(d.read(14, 4), 0, 'a read crossing the end of the ID');
  assert.equal(d.read(0x800, 4), 0);
  d.write(0, 4, 0xffffffff); // read-only
  assert.equal(d.read(0, 4), 0x04030201);
  assert.deepEqual(lines, [], 'no interrupt without a new generation');
});

test('a new generation raises the line until the guest reads the ID', () => {
  const lines: boolean[] = [];
  const d = new VmGenId((l) => lines.push(l), ID1);
  d.regenerate(ID2);
  assert.deepEqual(lines, [true]);
  assert.deepEqual(d.value, ID2);
  assert.equal(d.read(0, 4), 0xc3d2e1f0);
  assert.deepEqual(lines, [true, false]);
  d.read(4, 4);
  assert.deepEqual(lines, [true, false], 'later reads leave the line alone');
  assert.throws(() => d.regenerate(bytes(1, 2, 3)), /16 bytes/);
});

test('vmgenid state round-trips, re-drives its line and refuses bad state', () => {
  const a = new VmGenId(() => {}, ID1);
  a.regenerate(ID2);
  const saved = JSON.parse(JSON.stringify(a.save()));
  const lines: boolean[] = [];
  const b = new VmGenId((l) => lines.push(l));
  assert.deepEqual(b.restore(saved), { ok: true });
  assert.deepEqual(b.value, ID2);
  assert.deepEqual(lines, [true], 'an unread change is still signalled after a restore');
  for (const bad of [null, [], { id: [1, 2], pending: false }, { id: Array(16).fill(256), pending: false }, { id: Array(16).fill(0), pending: 1 }]) {
    const r = b.restore(bad);
    assert.equal(r.ok, false, JSON.stringify(bad));
  }
  assert.deepEqual(b.value, ID2, 'a refused state changes nothing');
});

test('the device tree describes the vmgenid node Linux binds to', () => {
  const r = buildVirtFdt({ ramSize: 64 << 20 });
  assert.ok(r.ok);
  const text = Buffer.from(r.dtb).toString('latin1');
  assert.ok(text.includes(`vmgenid@${VMGENID_BASE.toString(16)}`));
  assert.ok(text.includes('microsoft,vmgenid'));
});
