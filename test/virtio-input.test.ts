// virtio-input (the machine's buttons) at device level, driven through the
// virtio-mmio registers by the test driver: the config space Linux probes, key
// presses queued until the driver posts buffers, hostile buffers, the status
// queue, save/restore. Also virtio-console's size (VIRTIO_CONSOLE_F_SIZE).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VirtioInput, BUTTONS_IDENTITY, EV_KEY, EV_SYN, KEY_POWER, KEY_RESTART, MAX_PENDING_EVENTS,
} from '../src/devices/virtio/input/device.js';
import { CFG_EV_BITS, CFG_ID_DEVIDS, CFG_ID_NAME, CFG_ID_SERIAL, CFG_PROP_BITS, CFG_UNION_OFFSET } from '../src/devices/virtio/input/config.js';
import { VirtioConsole } from '../src/devices/virtio/console.js';
import { VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS, VirtioMmio } from '../src/devices/virtio/mmio.js';
import { VIRTQ_DESC_F_WRITE as WRITE } from '../src/devices/virtio/queue.js';
import { BUTTONS_DEVICE_NAME } from '../src/image/initramfs.js';
import { bringUp, BASE, DESC, AVAIL, USED, type Harness } from './fixtures/virtio-driver.js';

const SIZE = 8;
const BUFS = BASE + 0x30000;

function setup(dev = new VirtioInput()) {
  const h = bringUp(dev, SIZE);
  const r = h.ram;
  /** Offer one single-descriptor chain on queue q (descriptor `slot` of that queue's table). */
  const offer = (q: number, slot: number, addr: number, len: number, flags: number) => {
    const avail = AVAIL + q * 0x4000;
    const idx = r.u16(avail + 2);
    r.setDesc(DESC + q * 0x4000, slot, addr, len, flags);
    r.setU16(avail + 4 + 2 * (idx % SIZE), slot);
    r.setU16(avail + 2, (idx + 1) & 0xffff);
    h.notify(q);
  };
  const used = (q: number) => r.u16(USED + q * 0x4000 + 2);
  /** The event the device wrote into buffer `slot` of the event queue. */
  const event = (slot: number) => {
    const o = BUFS + slot * 16 - BASE;
    return { type: r.dv.getUint16(o, true), code: r.dv.getUint16(o + 2, true), value: r.dv.getInt32(o + 4, true) };
  };
  return { dev, h, r, offer, used, event };
}

/** What the driver reads after writing select/subsel, as Linux's virtinput_cfg_select does (byte reads). */
function cfgSelect(h: Harness, select: number, subsel: number): Uint8Array {
  h.transport.write(VIRTIO_MMIO_CONFIG, 1, select);
  h.transport.write(VIRTIO_MMIO_CONFIG + 1, 1, subsel);
  const size = h.transport.read(VIRTIO_MMIO_CONFIG + 2, 1);
  return Uint8Array.from({ length: size }, (_, i) => h.transport.read(VIRTIO_MMIO_CONFIG + CFG_UNION_OFFSET + i, 1));
}

const press = (code: number) => [
  { type: EV_KEY, code, value: 1 },
  { type: EV_SYN, code: 0, value: 0 },
  { type: EV_KEY, code, value: 0 },
  { type: EV_SYN, code: 0, value: 0 },
];

test('config space: name, serial, ids, and exactly KEY_POWER and KEY_RESTART as key bits', () => {
  const { h } = setup();
  assert.equal(new TextDecoder().decode(cfgSelect(h, CFG_ID_NAME, 0)), 'tsvisor buttons');
  assert.equal(new TextDecoder().decode(cfgSelect(h, CFG_ID_SERIAL, 0)), 'tsvisor-0');
  const ids = new DataView(cfgSelect(h, CFG_ID_DEVIDS, 0).buffer);
  assert.deepEqual([0, 2, 4, 6].map((o) => ids.getUint16(o, true)), [0x06, 0x5354, 0x0001, 0x0001]);
  assert.equal(cfgSelect(h, CFG_PROP_BITS, 0).length, 0, 'no input properties');
  const keys = cfgSelect(h, CFG_EV_BITS, EV_KEY);
  const set: number[] = [];
  keys.forEach((b, i) => {
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) set.push(i * 8 + bit);
  });
  assert.deepEqual(set, [KEY_POWER, KEY_RESTART]);
  for (const ev of [0x02 /* EV_REL */, 0x03 /* EV_ABS */, 0x05 /* EV_SW */, 0x11 /* EV_LED */]) {
    assert.equal(cfgSelect(h, CFG_EV_BITS, ev).length, 0, `no bits for event type ${ev}`);
  }
  // A 4-byte read sees select, subsel, size and the first reserved byte, little-endian.
  cfgSelect(h, CFG_ID_NAME, 0);
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 4), CFG_ID_NAME | (15 << 16));
  // Reads past the config space are zero, never an exception.
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG + 0x200, 4), 0);
});

test('the default guest\'s handler looks for the name the device reports', () => {
  assert.equal(BUTTONS_DEVICE_NAME, BUTTONS_IDENTITY.name);
});

test('a press before the driver posts buffers waits, then arrives in order, one event per buffer', () => {
  const { dev, h, offer, used, event } = setup();
  assert.equal(dev.active, true);
  assert.equal(dev.press('power'), true);
  assert.equal(used(0), 0);
  for (let i = 0; i < 3; i++) offer(0, i, BUFS + i * 16, 8, WRITE);
  assert.equal(used(0), 3, 'three events delivered');
  assert.deepEqual([0, 1, 2].map(event), press(KEY_POWER).slice(0, 3));
  assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & 1, 1, 'used-buffer interrupt');
  h.transport.write(VIRTIO_MMIO_INTERRUPT_ACK, 4, 1);
  offer(0, 3, BUFS + 3 * 16, 8, WRITE);
  assert.equal(used(0), 4);
  assert.deepEqual(event(3), press(KEY_POWER)[3]);
  assert.equal(h.ram.usedElem(SIZE, 0).len, 8, 'each used element is 8 bytes');
});

test('with buffers posted, a press is delivered at once; restart sends KEY_RESTART', () => {
  const { dev, offer, used, event } = setup();
  for (let i = 0; i < 6; i++) offer(0, i, BUFS + i * 16, 16, WRITE);
  assert.equal(used(0), 0, 'no events, no buffers used');
  dev.press('restart');
  assert.equal(used(0), 4);
  assert.deepEqual([0, 1, 2, 3].map(event), press(KEY_RESTART));
});

test('pending presses are bounded', () => {
  const { dev } = setup();
  let accepted = 0;
  for (let i = 0; i < MAX_PENDING_EVENTS; i++) if (dev.press('power')) accepted++;
  assert.equal(accepted, MAX_PENDING_EVENTS / 4);
  assert.equal(dev.press('power'), false, 'refused beyond the bound');
});

test('hostile event buffers put the device in needs-reset, and the host carries on', () => {
  for (const [len, flags, why] of [[8, 0, /device-readable/], [4, WRITE, /event buffer of 4 bytes/]] as const) {
    const { dev, h, offer, used } = setup();
    dev.press('power');
    offer(0, 0, BUFS, len, flags);
    assert.equal(h.transport.needsReset, true);
    assert.match(h.logs.join('\n'), why);
    assert.equal(used(0), 0);
    assert.equal(dev.active, false, 'a broken device takes no presses');
    // A driver reset clears it.
    h.transport.write(0x070, 4, 0);
    assert.equal(h.transport.needsReset, false);
  }
});

test('the status queue (LED feedback) is consumed and returned; a writable status buffer is refused', () => {
  const { h, offer, used } = setup();
  offer(1, 0, BUFS, 8, 0);
  offer(1, 1, BUFS + 16, 8, 0);
  assert.equal(used(1), 2);
  offer(1, 2, BUFS + 32, 8, WRITE);
  assert.equal(h.transport.needsReset, true);
});

test('save/restore keeps the selection and the undelivered events; bad state is refused', () => {
  const { dev, h } = setup();
  dev.press('restart');
  cfgSelect(h, CFG_EV_BITS, EV_KEY);
  const saved = JSON.parse(JSON.stringify(h.transport.save()));
  const copy = new VirtioInput();
  const t2 = new VirtioMmio(copy, { mem: h.ram.mem, irq: () => {} });
  assert.deepEqual(t2.restore(saved), { ok: true });
  assert.equal(t2.read(VIRTIO_MMIO_CONFIG + 2, 1), 52, 'the key bitmap is still selected');
  assert.deepEqual(copy.save(), dev.save());
  // The restored device delivers what was pending.
  const { h: h2 } = { h: { ...h, transport: t2 } };
  const r = h2.ram;
  for (let i = 0; i < 4; i++) {
    r.setDesc(DESC, i, BUFS + i * 16, 8, WRITE);
    r.offer(SIZE, i);
  }
  t2.write(0x050, 4, 0);
  assert.equal(r.usedIdx(), 4);
  assert.equal(r.dv.getUint16(BUFS - BASE + 2, true), KEY_RESTART);
  for (const bad of [null, { select: 300, subsel: 0, pending: [] }, { select: 0, subsel: 0, pending: [[1, 2]] }, { select: 0, subsel: 0, pending: Array(65).fill([1, 1, 1]) }]) {
    const r2 = new VirtioInput().restore(bad, null);
    assert.equal(r2.ok, false, JSON.stringify(bad)?.slice(0, 80));
  }
});

test('virtio-console: the terminal size is in the config space, with a config-change interrupt', () => {
  const con = new VirtioConsole(() => {});
  const h = bringUp(con, SIZE, { featuresLo: 1 }); // VIRTIO_CONSOLE_F_SIZE
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 4), 0, 'no size yet');
  con.setSize(146, 40);
  assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & 2, 2, 'config change');
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 2), 146);
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG + 2, 2), 40);
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 4), 146 | (40 << 16));
  assert.throws(() => con.setSize(0, 40), RangeError);
  assert.throws(() => con.setSize(80, 70000), RangeError);
  assert.throws(() => con.setSize(80.5, 24), RangeError);
  // Kept in a snapshot; a snapshot from before the feature restores as 0 x 0.
  const c2 = new VirtioConsole(() => {});
  assert.deepEqual(c2.restore(con.save(), null), { ok: true });
  assert.deepEqual(c2.size, { cols: 146, rows: 40 });
  const c3 = new VirtioConsole(() => {});
  assert.deepEqual(c3.restore({ pending: [] }, null), { ok: true });
  assert.deepEqual(c3.size, { cols: 0, rows: 0 });
  assert.equal(new VirtioConsole(() => {}).restore({ pending: [], cols: -1, rows: 2 }, null).ok, false);
});

test('virtio-console: a size set before the driver is up is announced when it comes up', () => {
  const con = new VirtioConsole(() => {});
  con.setSize(100, 30);
  const h = bringUp(con, SIZE, { featuresLo: 1 });
  assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & 2, 2, 'config change at DRIVER_OK');
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG, 4), 100 | (30 << 16));
});
