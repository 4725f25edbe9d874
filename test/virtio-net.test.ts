// virtio-net device, frame rings and the L2 switch, without a guest: a test
// driver posts buffers through the real virtio-mmio transport.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  VirtioNet, NET_HDR_SIZE, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, VIRTIO_NET_OK, VIRTIO_NET_ERR, type NicPort,
} from '../src/devices/virtio/net.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTIO_F_RING_EVENT_IDX, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK, INT_CONFIG_CHANGE } from '../src/devices/virtio/mmio.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../src/devices/virtio/queue.js';
import { FrameRing } from '../src/net/frame-ring.js';
import { VirtualSwitch } from '../src/net/switch.js';
import { bringUp, FakeRam, BASE, DESC, AVAIL, USED, DATA } from './fixtures/virtio-driver.js';

const SIZE = 16;
const RXQ = { desc: DESC, avail: AVAIL, used: USED };
const TXQ = { desc: DESC + 0x4000, avail: AVAIL + 0x4000, used: USED + 0x4000 };
const CTRLQ = { desc: DESC + 0x8000, avail: AVAIL + 0x8000, used: USED + 0x8000 };
const MAC = Uint8Array.of(0x52, 0x54, 0, 1, 2, 3);

class TestPort implements NicPort {
  sent: Uint8Array[] = [];
  incoming: Uint8Array[] = [];
  room = true;
  send(parts: readonly Uint8Array[], length: number): boolean {
    if (!this.room) return false;
    const f = new Uint8Array(length);
    let p = 0;
    for (const s of parts) {
      f.set(s, p);
      p += s.length;
    }
    this.sent.push(f);
    return true;
  }
  peek(): Uint8Array | null {
    return this.incoming[0] ?? null;
  }
  consume(): void {
    this.incoming.shift();
  }
}

function offer(ram: FakeRam, q: { avail: number }, head: number): void {
  const idx = ram.u16(q.avail + 2);
  ram.setU16(q.avail + 4 + 2 * (idx % SIZE), head);
  ram.setU16(q.avail + 2, (idx + 1) & 0xffff);
}

function used(ram: FakeRam, q: { used: number }, i: number): { id: number; len: number } {
  const o = q.used + 4 + 8 * (i % SIZE);
  return { id: ram.u32(o), len: ram.u32(o + 4) };
}

function frame(len: number, seed = 1): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

function setup(mergeable = true, extra = 0) {
  const port = new TestPort();
  const dev = new VirtioNet({ mac: MAC, port });
  const h = bringUp(dev, SIZE, { featuresLo: (mergeable ? 1 << VIRTIO_NET_F_MRG_RXBUF : 0) | extra });
  return { port, dev, h, ram: h.ram };
}

/** Put header + frame in one readable descriptor of the TX queue and notify. */
function transmit(s: ReturnType<typeof setup>, f: Uint8Array, hdr = new Uint8Array(NET_HDR_SIZE), slot = 0): void {
  const addr = DATA + 0x8000 + slot * 0x800;
  s.ram.bytes(addr, NET_HDR_SIZE).set(hdr);
  s.ram.bytes(addr + NET_HDR_SIZE, f.length).set(f);
  s.ram.setDesc(TXQ.desc, slot, addr, NET_HDR_SIZE + f.length, 0);
  offer(s.ram, TXQ, slot);
  s.h.notify(1);
}

test('config space: MAC and link up', () => {
  const { h } = setup();
  const mac = [0, 1, 2, 3, 4, 5].map((i) => h.transport.read(VIRTIO_MMIO_CONFIG + i, 1));
  assert.deepEqual(mac, [...MAC]);
  assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2), 1);
});

test('link bounce: down with a config interrupt, up again with another once the driver has looked', () => {
  const { h, dev } = setup();
  const status = () => h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2);
  const configIrq = () => (h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & INT_CONFIG_CHANGE) !== 0;
  assert.equal(configIrq(), false);
  dev.bounceLink();
  assert.equal(configIrq(), true, 'the link going down is signalled');
  h.transport.write(VIRTIO_MMIO_INTERRUPT_ACK, 4, INT_CONFIG_CHANGE);
  assert.equal(configIrq(), false);
  assert.equal(status(), 0, 'the driver sees the link down');
  assert.equal(configIrq(), true, 'the link coming back is signalled');
  assert.equal(status(), 1, 'and then sees it up');
  // A snapshot taken mid-blip keeps it; a reset ends it.
  dev.bounceLink();
  const saved = JSON.parse(JSON.stringify(dev.save()));
  const other = setup();
  assert.deepEqual(other.dev.restore(saved, null), { ok: true });
  assert.equal(other.h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2), 0);
  assert.equal(other.dev.restore({ ...saved, linkDown: 'yes' }, null).ok, false);
  dev.reset();
  assert.equal(status(), 1);
});

test('transmit: the frame reaches the port without the virtio-net header', () => {
  const s = setup();
  const f = frame(60);
  transmit(s, f);
  assert.equal(s.port.sent.length, 1);
  assert.deepEqual(s.port.sent[0], f);
  assert.equal(used(s.ram, TXQ, 0).id, 0);
  assert.equal(s.dev.counters.txFrames, 1);
  assert.equal(s.dev.counters.txBytes, 60);
});

test('transmit: runt, oversized and GSO frames are dropped and counted, the device keeps working', () => {
  const s = setup();
  transmit(s, frame(10), undefined, 0);
  transmit(s, frame(1600), undefined, 1);
  const gso = new Uint8Array(NET_HDR_SIZE);
  gso[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4, never negotiated
  transmit(s, frame(100), gso, 2);
  assert.equal(s.port.sent.length, 0);
  assert.equal(s.dev.counters.txDropped, 3);
  assert.equal(s.ram.u16(TXQ.used + 2), 3, 'every buffer goes back to the driver');
  assert.equal(s.h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET, 0);
  transmit(s, frame(64), undefined, 3);
  assert.equal(s.port.sent.length, 1);
});

test('deferred transmit: frames queued during a slice leave together at its end, with one interrupt and no further notification asked for', () => {
  const port = new TestPort();
  const dev = new VirtioNet({ mac: MAC, port, deferTransmit: true });
  const h = bringUp(dev, SIZE, { featuresLo: (1 << VIRTIO_NET_F_MRG_RXBUF) | (1 << VIRTIO_F_RING_EVENT_IDX) });
  const s = { port, dev, h, ram: h.ram };
  const availEvent = () => s.ram.u16(TXQ.used + 4 + 8 * SIZE);
  const frames = [frame(60, 1), frame(200, 2), frame(1514, 3)];
  frames.forEach((f, i) => transmit(s, f, undefined, i));
  assert.equal(port.sent.length, 0, 'nothing leaves inside the notification');
  assert.equal(s.ram.u16(TXQ.used + 2), 0);
  assert.equal(availEvent(), 0, 'the device has not caught up: a driver with event indexes does not notify again');
  const irqsBefore = h.irq.filter((l) => l).length;
  assert.equal(dev.flushTransmit(), 3);
  assert.deepEqual(port.sent, frames, 'all three, in order');
  assert.equal(s.ram.u16(TXQ.used + 2), 3);
  assert.deepEqual([0, 1, 2].map((i) => used(s.ram, TXQ, i).id), [0, 1, 2]);
  assert.equal(availEvent(), 3);
  assert.equal(h.irq.filter((l) => l).length - irqsBefore, 1, 'one interrupt for the batch');
  assert.equal(dev.flushTransmit(), 0, 'nothing left');
  // poll() (before every slice) also sends what waits, so no frame depends on a notification.
  transmit(s, frame(64, 4), undefined, 3);
  assert.equal(port.sent.length, 3);
  dev.poll();
  assert.equal(port.sent.length, 4);
  assert.equal(dev.counters.txFrames, 4);
});

test('transmit: a full host ring drops the frame (counted), not the device', () => {
  const s = setup();
  s.port.room = false;
  transmit(s, frame(64));
  assert.equal(s.dev.counters.txDropped, 1);
  assert.equal(s.ram.u16(TXQ.used + 2), 1);
});

test('transmit: a device-writable buffer on the transmit queue needs a reset', () => {
  const s = setup();
  s.ram.setDesc(TXQ.desc, 0, DATA, 100, VIRTQ_DESC_F_WRITE);
  offer(s.ram, TXQ, 0);
  s.h.notify(1);
  assert.ok(s.h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET);
  assert.match(s.h.logs.join('\n'), /writable/);
});

test('receive (mergeable): a frame spans two small buffers, num_buffers = 2', () => {
  const s = setup(true);
  s.ram.setDesc(RXQ.desc, 0, DATA, 1000, VIRTQ_DESC_F_WRITE);
  s.ram.setDesc(RXQ.desc, 1, DATA + 0x1000, 1000, VIRTQ_DESC_F_WRITE);
  offer(s.ram, RXQ, 0);
  offer(s.ram, RXQ, 1);
  const f = frame(1514, 3);
  s.port.incoming.push(f);
  assert.equal(s.dev.poll(), 1);
  assert.equal(s.ram.u16(RXQ.used + 2), 2);
  assert.deepEqual(used(s.ram, RXQ, 0), { id: 0, len: 1000 });
  assert.deepEqual(used(s.ram, RXQ, 1), { id: 1, len: NET_HDR_SIZE + 1514 - 1000 });
  assert.equal(s.ram.u16(DATA + 10), 2, 'num_buffers');
  const got = new Uint8Array(1514);
  got.set(s.ram.bytes(DATA + NET_HDR_SIZE, 1000 - NET_HDR_SIZE), 0);
  got.set(s.ram.bytes(DATA + 0x1000, 1514 - (1000 - NET_HDR_SIZE)), 1000 - NET_HDR_SIZE);
  assert.deepEqual(got, f);
  assert.equal(s.port.incoming.length, 0);
});

test('receive: frames wait for buffers and arrive once the driver posts them', () => {
  const s = setup(false);
  s.port.incoming.push(frame(100, 1), frame(200, 2));
  assert.equal(s.dev.poll(), 0);
  s.ram.setDesc(RXQ.desc, 0, DATA, 2048, VIRTQ_DESC_F_WRITE);
  s.ram.setDesc(RXQ.desc, 1, DATA + 0x1000, 2048, VIRTQ_DESC_F_WRITE);
  offer(s.ram, RXQ, 0);
  offer(s.ram, RXQ, 1);
  s.h.notify(0); // posting buffers notifies the receive queue
  assert.equal(s.ram.u16(RXQ.used + 2), 2);
  assert.deepEqual(used(s.ram, RXQ, 1), { id: 1, len: NET_HDR_SIZE + 200 });
  assert.deepEqual(s.ram.bytes(DATA + 0x1000 + NET_HDR_SIZE, 200), frame(200, 2));
  assert.equal(s.dev.counters.rxFrames, 2);
});

test('receive (not mergeable): a buffer too small for the frame is returned empty, the frame dropped', () => {
  const s = setup(false);
  s.ram.setDesc(RXQ.desc, 0, DATA, 64, VIRTQ_DESC_F_WRITE);
  offer(s.ram, RXQ, 0);
  s.port.incoming.push(frame(500));
  s.dev.poll();
  assert.deepEqual(used(s.ram, RXQ, 0), { id: 0, len: 0 });
  assert.equal(s.dev.counters.rxDropped, 1);
});

test('hostile driver: random transmit descriptor tables never throw or write outside RAM', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ addr: fc.nat(0x20_0000), len: fc.nat(0x3000), flags: fc.nat(7), next: fc.nat(20) }), { minLength: 1, maxLength: SIZE }),
      fc.array(fc.nat(20), { minLength: 1, maxLength: 8 }),
      (descs, heads) => {
        const s = setup();
        descs.forEach((d, i) => s.ram.setDesc(TXQ.desc, i, BASE + d.addr, d.len, d.flags & ~VIRTQ_DESC_F_WRITE | (d.flags & VIRTQ_DESC_F_NEXT), d.next));
        for (const h of heads) offer(s.ram, TXQ, h);
        s.h.notify(1);
        for (const f of s.port.sent) assert.ok(f.length >= 14 && f.length <= 1518);
      },
    ),
    { numRuns: 300 },
  );
});

test('frame ring: frames of random sizes survive wrap-around in order', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1600 }), { minLength: 1, maxLength: 200 }), fc.nat(5), (sizes, lag) => {
      const ring = FrameRing.create(8192);
      const other = new FrameRing(ring.sab); // the consumer's view
      const queued: Uint8Array[] = [];
      sizes.forEach((n, i) => {
        const f = frame(n, i);
        // Split into two parts to exercise multi-part pushes.
        if (ring.push([f.subarray(0, n >> 1), f.subarray(n >> 1)], n)) queued.push(f);
        while (queued.length > lag) {
          const got = other.peek();
          assert.ok(got);
          assert.deepEqual(Uint8Array.from(got), queued.shift());
          other.consume();
        }
      });
      for (const f of queued) {
        assert.deepEqual(Uint8Array.from(other.peek()!), f);
        other.consume();
      }
      assert.equal(other.peek(), null);
      assert.equal(ring.used, 0);
    }),
    { numRuns: 200 },
  );
});

test('switch: learns MACs, forwards unicast to one port, floods broadcast and unknown', () => {
  const sw = new VirtualSwitch('unit');
  const got: Record<string, Uint8Array[]> = { a: [], b: [], c: [] };
  const ports = Object.fromEntries(['a', 'b', 'c'].map((n) => {
    const p = sw.port(n);
    p.start((f) => got[n].push(Uint8Array.from(f)));
    return [n, p];
  }));
  const eth = (dst: number[], src: number[]) => Uint8Array.from([...dst, ...src, 0x08, 0x00, ...new Array(46).fill(0)]);
  const A = [2, 0, 0, 0, 0, 0xa];
  const B = [2, 0, 0, 0, 0, 0xb];
  const BCAST = [255, 255, 255, 255, 255, 255];
  ports.a.fromGuest(eth(BCAST, A)); // flood, learn A
  assert.deepEqual([got.a.length, got.b.length, got.c.length], [0, 1, 1]);
  ports.b.fromGuest(eth(A, B)); // known: only to a; learn B
  assert.deepEqual([got.a.length, got.b.length, got.c.length], [1, 1, 1]);
  ports.a.fromGuest(eth([2, 0, 0, 0, 0, 0xc], A)); // unknown unicast: flood
  assert.deepEqual([got.a.length, got.b.length, got.c.length], [1, 2, 2]);
  ports.a.fromGuest(new Uint8Array(5)); // runt
  assert.equal(ports.a.counters().dropped, 1);
  assert.equal(ports.b.counters().txToGuestFrames, 2);
});

test('rate limits: the tx bucket holds frames until it refills; rx frames wait in the ring', () => {
  let now = 0;
  const port = new TestPort();
  const dev = new VirtioNet({ mac: MAC, port, clock: () => now, limits: { tx: { bandwidth: { size: 2000, refillMs: 1000 } }, rx: { ops: { size: 1, refillMs: 1000 } } } });
  const h = bringUp(dev, SIZE, { featuresLo: 0 });
  const s = { port, dev, h, ram: h.ram };
  for (let i = 0; i < 4; i++) transmit(s, frame(1000, i), undefined, i);
  assert.equal(port.sent.length, 2, 'a full bucket pays for two 1000-byte frames');
  const deadline = dev.nextDeadline();
  assert.ok(deadline !== null && deadline > 0 && deadline <= 500, `deadline ${deadline}`);
  now = 500;
  dev.poll();
  assert.equal(port.sent.length, 3, 'half a second refills 1000 bytes');
  now = 1000;
  dev.poll();
  assert.equal(port.sent.length, 4);
  assert.deepEqual(port.sent[3], frame(1000, 3), 'frames keep their order');
  assert.equal(dev.limiterStats().tx.throttledEvents > 0, true);
  // rx: one frame per second.
  s.ram.setDesc(RXQ.desc, 0, DATA, 2048, VIRTQ_DESC_F_WRITE);
  s.ram.setDesc(RXQ.desc, 1, DATA + 0x1000, 2048, VIRTQ_DESC_F_WRITE);
  offer(s.ram, RXQ, 0);
  offer(s.ram, RXQ, 1);
  port.incoming.push(frame(100, 1), frame(100, 2));
  assert.equal(dev.poll(), 1);
  assert.equal(port.incoming.length, 1, 'the second frame waits in the ring');
  assert.ok(dev.nextDeadline() !== null);
  now = 2000;
  assert.equal(dev.poll(), 1);
  dev.setLimits({});
  assert.equal(dev.nextDeadline(), null);
});

/** A control request {class, command} with its ack byte, as two descriptors; returns the ack byte's address. */
function controlRequest(s: ReturnType<typeof setup>, cls: number, cmd: number, slot = 0): number {
  const addr = DATA + 0xc000 + slot * 0x100;
  s.ram.bytes(addr, 2).set([cls, cmd]);
  s.ram.bytes(addr + 0x10, 1)[0] = 0xaa;
  s.ram.setDesc(CTRLQ.desc, 2 * slot, addr, 2, VIRTQ_DESC_F_NEXT, 2 * slot + 1);
  s.ram.setDesc(CTRLQ.desc, 2 * slot + 1, addr + 0x10, 1, VIRTQ_DESC_F_WRITE);
  offer(s.ram, CTRLQ, 2 * slot);
  s.h.notify(2);
  return addr + 0x10;
}

test('guest announce: S_ANNOUNCE with a config interrupt until the driver acknowledges on the control queue', () => {
  const s = setup(true, (1 << VIRTIO_NET_F_CTRL_VQ) | (1 << VIRTIO_NET_F_GUEST_ANNOUNCE));
  const status = () => s.h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2);
  const configIrq = () => (s.h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & INT_CONFIG_CHANGE) !== 0;
  assert.equal(s.dev.canAnnounce, true);
  s.dev.announce();
  assert.equal(configIrq(), true, 'the guest is told');
  assert.equal(status(), 1 | VIRTIO_NET_S_ANNOUNCE, 'link up and announce');
  // Saved while announcing, the request survives a restore (a snapshot or a second migration).
  const saved = JSON.parse(JSON.stringify(s.dev.save()));
  assert.equal(saved.announcing, true);
  // Any other command is refused with VIRTIO_NET_ERR and changes nothing.
  const err = controlRequest(s, 1, 0, 0);
  assert.equal(s.ram.bytes(err, 1)[0], VIRTIO_NET_ERR);
  assert.equal(status(), 1 | VIRTIO_NET_S_ANNOUNCE);
  const ok = controlRequest(s, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, 1);
  assert.equal(s.ram.bytes(ok, 1)[0], VIRTIO_NET_OK);
  assert.deepEqual(used(s.ram, CTRLQ, 1), { id: 2, len: 1 });
  assert.equal(status(), 1, 'acknowledged: the bit is gone');
  assert.equal(s.dev.announcementsAcked, 1);
  const other = setup(true, (1 << VIRTIO_NET_F_CTRL_VQ) | (1 << VIRTIO_NET_F_GUEST_ANNOUNCE));
  assert.deepEqual(other.dev.restore(saved, null), { ok: true });
  assert.equal(other.h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2), 1 | VIRTIO_NET_S_ANNOUNCE);
  assert.equal(other.dev.restore({ ...saved, announcing: 1 }, null).ok, false);
});

test('guest announce: a driver without the feature gets a link blip; a control request without an ack byte needs a reset', () => {
  const plain = setup();
  assert.equal(plain.dev.canAnnounce, false);
  plain.dev.announce();
  assert.equal(plain.h.transport.read(VIRTIO_MMIO_CONFIG + 6, 2), 0, 'the link blips instead');
  const s = setup(true, (1 << VIRTIO_NET_F_CTRL_VQ) | (1 << VIRTIO_NET_F_GUEST_ANNOUNCE));
  const addr = DATA + 0xc000;
  s.ram.setDesc(CTRLQ.desc, 0, addr, 2, 0);
  offer(s.ram, CTRLQ, 0);
  s.h.notify(2);
  assert.ok(s.h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET);
});

test('a saved transport from before the control queue (two queues, no CTRL_VQ) restores; one that negotiated it must have three', () => {
  const s = setup();
  const state = s.h.transport.save();
  const twoQueues = { ...state, queues: state.queues.slice(0, 2) };
  const fresh = setup();
  assert.deepEqual(fresh.h.transport.restore(JSON.parse(JSON.stringify(twoQueues))), { ok: true });
  const withCtrl = setup(true, 1 << VIRTIO_NET_F_CTRL_VQ);
  const st2 = withCtrl.h.transport.save();
  const r = setup().h.transport.restore(JSON.parse(JSON.stringify({ ...st2, queues: st2.queues.slice(0, 2) })));
  assert.equal(r.ok, false);
  assert.match((r as { error: string }).error, /queues must be 3/);
});
