// Per-device snapshot round trips: a device is driven into some state, saved
// (through JSON, as a snapshot stores it), restored into a fresh device over a
// copy of guest RAM, and then both must answer the next requests the same way.
// Hostile states (out-of-range indexes, rings outside RAM, wrong shapes) must be
// refused with a message, leaving nothing half restored.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlk } from '../src/devices/virtio/blk/device.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../src/devices/virtio/blk/request.js';
import { VirtioConsole } from '../src/devices/virtio/console.js';
import { VirtioBalloon } from '../src/devices/virtio/balloon.js';
import { VirtioRng } from '../src/devices/virtio/rng.js';
import { VirtioNet, type NicPort } from '../src/devices/virtio/net.js';
import { VirtioMmio, type VirtioDevice, VIRTIO_MMIO_QUEUE_NOTIFY } from '../src/devices/virtio/mmio.js';
import { VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE } from '../src/devices/virtio/queue.js';
import { RawDisk } from '../src/storage/raw.js';
import { CpuCore } from '../src/machine/cpu-core.js';
import { saveCpu, restoreCpu } from '../src/machine/cpu-persist.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { bringUp, FakeRam, BASE, DESC, AVAIL, DATA, type Harness } from './fixtures/virtio-driver.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-snapdev-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A snapshot stores plain JSON: nothing may survive that JSON cannot carry. */
const viaJson = <T>(v: T): unknown => JSON.parse(JSON.stringify(v));

/** Copy guest RAM and build a fresh transport for `device` restored from `h`'s state. */
function clone(h: Harness, device: VirtioDevice): { h2: Harness; irq: boolean[] } {
  const ram = new FakeRam(h.ram.ram.length);
  ram.ram.set(h.ram.ram);
  const irq: boolean[] = [];
  const logs: string[] = [];
  const t = new VirtioMmio(device, { mem: ram.mem, irq: (l) => irq.push(l), log: (m) => logs.push(m) });
  const r = t.restore(viaJson(h.transport.save()));
  assert.deepEqual(r, { ok: true });
  return { h2: { ram, transport: t, irq, logs, notify: (q = 0) => t.write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, q) }, irq };
}

const HDR = DATA;
const BUF = DATA + 0x1000;
const STATUS = DATA + 0x100;

/** Post a one-sector read (head 3*k) of sector `sector` into BUF + k*512. */
function postRead(h: Harness, k: number, sector: number): void {
  const r = h.ram;
  const hdr = HDR + 16 * k;
  r.dv.setUint32(hdr - BASE, VIRTIO_BLK_T_IN, true);
  r.dv.setBigUint64(hdr - BASE + 8, BigInt(sector), true);
  const head = 3 * k;
  r.setDesc(DESC, head, hdr, 16, NEXT, head + 1);
  r.setDesc(DESC, head + 1, BUF + 512 * k, 512, NEXT | WRITE, head + 2);
  r.setDesc(DESC, head + 2, STATUS + k, 1, WRITE);
  r.offer(16, head);
}

test('virtio-blk: a request held by the rate limiter is saved by head and served by the restored device', () => {
  const path = join(dir, 'blk.img');
  const data = new Uint8Array(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  writeFileSync(path, data);
  let now = 0;
  const clock = () => now;
  const limits = { ops: { size: 1, refillMs: 1000 } };
  const dev = new VirtioBlk({ backend: RawDisk.open(path), limits, clock }, 'virtio-blk0');
  const h = bringUp(dev, 16);
  postRead(h, 0, 1);
  postRead(h, 1, 2);
  h.notify();
  assert.equal(h.ram.usedIdx(), 1, 'the first read is served, the second waits for a token');
  assert.equal(dev.stats().throttled, true);

  const dev2 = new VirtioBlk({ backend: RawDisk.open(path), clock }, 'virtio-blk0');
  const { h2 } = clone(h, dev2);
  assert.equal(dev2.stats().throttled, true, 'the restored device holds the same request');
  assert.deepEqual(dev2.stats().limits, dev.stats().limits, 'limits travel with the state');
  assert.equal(dev2.nextDeadline(), dev.nextDeadline(), 'same deadline on the same clock');
  now = 1000;
  dev.poll();
  dev2.poll();
  for (const x of [h, h2]) {
    assert.equal(x.ram.usedIdx(), 2, 'the held read completes after the refill');
    assert.deepEqual(x.ram.bytes(BUF + 512, 512), data.subarray(1024, 1536), 'sector 2 read into the buffer');
  }
  assert.deepEqual(h2.ram.ram, h.ram.ram, 'both devices left guest RAM identical');
  assert.deepEqual(dev2.stats(), dev.stats());
});

test('virtio-blk: a disk of another size or a held head outside the queue is refused', () => {
  const path = join(dir, 'blk2.img');
  writeFileSync(path, new Uint8Array(1 << 20));
  const dev = new VirtioBlk({ backend: RawDisk.open(path), limits: { ops: { size: 1, refillMs: 1000 } }, clock: () => 0 });
  const h = bringUp(dev, 16);
  postRead(h, 0, 0);
  postRead(h, 1, 0);
  h.notify();
  const saved = viaJson(h.transport.save()) as { device: { held: number; capacity: number } };

  const small = join(dir, 'blk3.img');
  writeFileSync(small, new Uint8Array(1 << 19));
  const t1 = new VirtioMmio(new VirtioBlk({ backend: RawDisk.open(small) }), { mem: h.ram.mem, irq: () => {} });
  const r1 = t1.restore(saved);
  assert.equal(r1.ok, false);
  assert.match(!r1.ok ? r1.error : '', /sectors/);

  for (const held of [16, 65535, -1, 1.5]) {
    const bad = viaJson(saved) as typeof saved;
    bad.device.held = held;
    const t2 = new VirtioMmio(new VirtioBlk({ backend: RawDisk.open(path) }), { mem: h.ram.mem, irq: () => {} });
    const r = t2.restore(bad);
    assert.equal(r.ok, false, `held ${held} refused`);
    assert.equal(t2.deviceStatus, 0, 'a refused restore leaves the transport reset');
  }
});

test('virtio transport: hostile queue state is refused with a message', () => {
  const dev = new VirtioRng(() => new Uint8Array(0));
  const h = bringUp(dev, 8);
  const good = viaJson(h.transport.save()) as { queues: { ring: Record<string, unknown> }[]; status: number; driverFeatures: string };
  const cases: [string, (s: typeof good) => void, RegExp][] = [
    ['descriptor table outside RAM', (s) => (s.queues[0].ring.desc = BASE + (1 << 20)), /outside guest RAM/],
    ['misaligned ring', (s) => (s.queues[0].ring.avail = AVAIL + 1), /aligned/],
    ['queue size not a power of two', (s) => (s.queues[0].ring.size = 6), /power of two/],
    ['index beyond 16 bits', (s) => (s.queues[0].ring.lastAvail = 70000), /16-bit/],
    ['features not offered', (s) => (s.driverFeatures = '0xffffffffffffffff'), /does not offer/],
    ['status not a byte', (s) => (s.status = 256), /byte/],
    ['missing queue', (s) => s.queues.pop(), /entries/],
  ];
  for (const [what, spoil, re] of cases) {
    const bad = viaJson(good) as typeof good;
    spoil(bad);
    const t = new VirtioMmio(new VirtioRng(() => new Uint8Array(0)), { mem: h.ram.mem, irq: () => {} });
    const r = t.restore(bad);
    assert.equal(r.ok, false, what);
    assert.match(!r.ok ? r.error : '', re, what);
  }
  const t = new VirtioMmio(new VirtioConsole(() => {}), { mem: h.ram.mem, irq: () => {} });
  const r = t.restore(good);
  assert.equal(r.ok, false, 'a state for another device type is refused');
});

test('virtio-console: input waiting for receive buffers survives and is delivered by the restored device', () => {
  const out1: number[] = [];
  const dev = new VirtioConsole((b) => out1.push(...b));
  const h = bringUp(dev, 8);
  dev.pushInput(new TextEncoder().encode('hello snapshot'));
  const dev2 = new VirtioConsole(() => {});
  const { h2 } = clone(h, dev2);
  for (const x of [h, h2]) {
    x.ram.setDesc(DESC, 0, BUF, 64, WRITE);
    x.ram.offer(8, 0);
    x.notify(0);
    assert.equal(x.ram.usedIdx(), 1);
    assert.equal(new TextDecoder().decode(x.ram.bytes(BUF, 14)), 'hello snapshot');
  }
});

test('virtio-balloon: pages in the balloon, totals and target survive; deflate works after restore', () => {
  const dev = new VirtioBalloon({ targetPages: 4 });
  const h = bringUp(dev, 8);
  // Inflate pages 64 and 65 of RAM (clear of the rings, which inflating would zero).
  const pfns = DATA + 0x2000;
  h.ram.dv.setUint32(pfns - BASE, BASE / 4096 + 64, true);
  h.ram.dv.setUint32(pfns - BASE + 4, BASE / 4096 + 65, true);
  h.ram.setDesc(DESC, 0, pfns, 8, 0);
  h.ram.offer(8, 0);
  h.notify(0);
  assert.equal(dev.stats().inflatedPages, 2);
  const dev2 = new VirtioBalloon();
  const { h2 } = clone(h, dev2);
  assert.deepEqual({ ...dev2.stats(), guestStatsAtMs: null }, { ...dev.stats(), guestStatsAtMs: null });
  assert.equal(dev2.stats().targetPages, 4);
  // Deflate page 64 on both (deflate queue 1, its ring at +0x4000): the restored bitmap knows the page.
  for (const [x, d] of [[h, dev], [h2, dev2]] as const) {
    x.ram.setDesc(DESC + 0x4000, 0, pfns, 4, 0);
    x.ram.setU16(AVAIL + 0x4000 + 4, 0);
    x.ram.setU16(AVAIL + 0x4000 + 2, 1);
    x.notify(1);
    assert.equal(d.stats().inflatedPages, 1, 'one page left in the balloon');
  }
  assert.deepEqual({ ...dev2.stats(), guestStatsAtMs: null }, { ...dev.stats(), guestStatsAtMs: null });

  const bad = viaJson(h.transport.save()) as { device: { inBalloon: unknown } };
  bad.device.inBalloon = [[0, 1 << 30]];
  const t = new VirtioMmio(new VirtioBalloon(), { mem: h.ram.mem, irq: () => {} });
  const r = t.restore(bad);
  assert.equal(r.ok, false, 'a balloon bitmap beyond guest RAM is refused');
});

test('virtio-net: MAC, counters and limiter state round-trip; another MAC is refused', () => {
  const port: NicPort = { send: () => true, peek: () => null, consume: () => {} };
  const mac = Uint8Array.from([0x52, 0x54, 0, 1, 2, 3]);
  const dev = new VirtioNet({ mac, port, limits: { tx: { bandwidth: { size: 1000, refillMs: 100 } } } });
  const h = bringUp(dev, 16);
  const saved = viaJson(h.transport.save());
  const dev2 = new VirtioNet({ mac, port });
  const t = new VirtioMmio(dev2, { mem: h.ram.mem, irq: () => {} });
  assert.deepEqual(t.restore(saved), { ok: true });
  assert.deepEqual(viaJson(t.save()), saved);
  const other = new VirtioMmio(new VirtioNet({ mac: Uint8Array.from([0x52, 0x54, 0, 9, 9, 9]), port }), { mem: h.ram.mem, irq: () => {} });
  assert.equal(other.restore(saved).ok, false);
  // A clone's NIC (newMac) restores the same state with its own MAC, and the guest reads that one.
  const cloneMac = [0x52, 0x54, 0, 7, 7, 7];
  const clone = new VirtioMmio(new VirtioNet({ mac: Uint8Array.from(cloneMac), port, newMac: true }), { mem: h.ram.mem, irq: () => {} });
  assert.deepEqual(clone.restore(saved), { ok: true });
  assert.deepEqual(Array.from({ length: 6 }, (_, i) => clone.read(0x100 + i, 1)), cloneMac);
  assert.deepEqual((viaJson(clone.save()) as { device: { mac: number[] } }).device.mac, cloneMac);
  // Still validated: a saved MAC that is not 6 bytes is refused, new MAC or not.
  const broken = structuredClone(saved) as { device: { mac: unknown } };
  broken.device.mac = [1, 2, 3];
  const clone2 = new VirtioMmio(new VirtioNet({ mac: Uint8Array.from(cloneMac), port, newMac: true }), { mem: h.ram.mem, irq: () => {} });
  assert.equal(clone2.restore(broken).ok, false);
});

test('cpu: every register and CSR round-trips into a fresh core; bad fields are refused', () => {
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const imports = { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} };
  const a = new CpuCore(wasm, 16 << 20, imports);
  a.reset(0x8000_0000n);
  for (let r = 1; r < 32; r++) a.setX(r, BigInt(r) * 0x1111_2222_3333n);
  for (let r = 0; r < 32; r++) a.setF(r, 0xffff_ffff_0000_0000n | BigInt(r));
  a.fpControl = { fflags: 0x15, frm: 3 };
  a.writeCsr(0x300, (1n << 3n) | (1n << 13n)); // mstatus: MIE, FS
  a.writeCsr(0x305, 0x8000_1000n); // mtvec
  a.writeCsr(0x105, 0x8020_0000n); // stvec
  a.writeCsr(0x140, 0xdead_beefn); // sscratch
  a.writeCsr(0x180, (8n << 60n) | 0x80123n); // satp Sv39
  a.writeCsr(0x14d, 123456n); // stimecmp
  a.priv = 1;
  a.pc = 0x8020_1234n;
  const saved = viaJson(saveCpu(a));

  const b = new CpuCore(wasm, 16 << 20, imports);
  b.reset(0x8000_0000n);
  assert.deepEqual(restoreCpu(b, saved), { ok: true });
  assert.deepEqual(viaJson(saveCpu(b)), saved);
  assert.equal(BigInt.asUintN(64, b.readCsr(0x180)), (8n << 60n) | 0x80123n);
  assert.equal(b.priv, 1);

  const spoil = (f: (s: { csr: Record<string, string>; x: string[]; frm: number }) => void) => {
    const s = viaJson(saved) as { csr: Record<string, string>; x: string[]; frm: number };
    f(s);
    return restoreCpu(b, s);
  };
  assert.match(JSON.stringify(spoil((s) => (s.csr.priv = '0x2'))), /privilege/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.ramSize = '0x1000'))), /RAM size/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.satp = '0x5000000000000000'))), /translation mode/);
  assert.match(JSON.stringify(spoil((s) => (s.x[3] = 'nope'))), /hex/);
  assert.match(JSON.stringify(spoil((s) => (s.frm = 9))), /frm/);
  assert.match(JSON.stringify(spoil((s) => delete s.csr.mepc)), /mepc/);
  assert.deepEqual(viaJson(saveCpu(b)), saved, 'refused restores changed nothing');
});
