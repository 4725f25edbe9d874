// Split virtqueue parsing and the virtio-mmio transport against hostile drivers:
// every bad chain is an error value, the device then needs a reset, and nothing
// outside guest RAM is ever read or written.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { walkChain, Virtqueue, VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE, VIRTQ_DESC_F_INDIRECT as INDIRECT } from '../src/devices/virtio/queue.js';
import {
  VirtioMmio, STATUS_DEVICE_NEEDS_RESET, STATUS_FEATURES_OK, VIRTIO_MMIO_MAGIC, INT_CONFIG_CHANGE, INT_USED_BUFFER,
  VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW,
} from '../src/devices/virtio/mmio.js';
import { VirtioRng } from '../src/devices/virtio/rng.js';
import { FakeRam, bringUp, BASE, RAM_SIZE, DESC, AVAIL, USED, DATA } from './fixtures/virtio-driver.js';

const F = { indirect: true, eventIdx: true };
const IND = BASE + 0x8000; // an indirect table

function walk(r: FakeRam, head: number, size = 8, features = F) {
  return walkChain(r.mem, DESC, size, head, features);
}

function expectError(res: ReturnType<typeof walk>, re: RegExp): void {
  assert.equal(res.ok, false, 'expected an error');
  if (!res.ok) assert.match(res.error, re);
}

describe('descriptor chains', () => {
  test('a readable then writable chain becomes RAM ranges', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 2, DATA, 16, NEXT, 5);
    r.setDesc(DESC, 5, DATA + 0x100, 512, NEXT | WRITE, 1);
    r.setDesc(DESC, 1, DATA + 0x400, 1, WRITE);
    const res = walk(r, 2);
    assert.ok(res.ok);
    if (!res.ok) return;
    assert.deepEqual(res.chain.readable, [{ off: DATA - BASE, len: 16 }]);
    assert.deepEqual(res.chain.writable, [{ off: DATA + 0x100 - BASE, len: 512 }, { off: DATA + 0x400 - BASE, len: 1 }]);
    assert.equal(res.chain.readLen, 16);
    assert.equal(res.chain.writeLen, 513);
  });

  test('head outside the queue', () => expectError(walk(new FakeRam(), 8), /outside the queue/));

  test('buffer below guest RAM', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 0, BASE - 16, 32, 0);
    expectError(walk(r, 0), /outside guest RAM/);
  });

  test('buffer past the end of guest RAM', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 0, BASE + RAM_SIZE - 8, 9, 0);
    expectError(walk(r, 0), /outside guest RAM/);
  });

  test('address + length overflowing 64 bits', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 0, 0, 0, 0);
    r.dv.setBigUint64(DESC - BASE, 0xffff_ffff_ffff_fff0n, true);
    r.dv.setUint32(DESC - BASE + 8, 0x100, true);
    expectError(walk(r, 0), /outside guest RAM/);
  });

  test('a descriptor that points to itself (loop)', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 3, DATA, 8, NEXT, 3);
    expectError(walk(r, 3), /longer than the queue/);
  });

  test('a loop through several descriptors (chain longer than the queue)', () => {
    const r = new FakeRam();
    for (let i = 0; i < 4; i++) r.setDesc(DESC, i, DATA, 8, NEXT, (i + 1) % 4);
    expectError(walk(r, 0, 4), /longer than the queue size 4/);
  });

  test('next index outside the queue', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 0, DATA, 8, NEXT, 200);
    expectError(walk(r, 0), /index 200 is outside the queue/);
  });

  test('a readable buffer after a writable one', () => {
    const r = new FakeRam();
    r.setDesc(DESC, 0, DATA, 8, WRITE | NEXT, 1);
    r.setDesc(DESC, 1, DATA, 8, 0);
    expectError(walk(r, 0), /readable buffer after a writable/);
  });

  test('total length overflowing 32 bits', () => {
    const r = new FakeRam(4 << 20);
    const size = 8192;
    for (let i = 0; i < size; i++) r.setDesc(DESC, i, BASE, 1 << 20, NEXT, i + 1);
    r.setDesc(DESC, size - 1, BASE, 1 << 20, 0);
    expectError(walkChain(r.mem, DESC, size, 0, F), /overflows 32 bits/);
  });

  test('descriptor table outside RAM', () => {
    const r = new FakeRam();
    expectError(walkChain(r.mem, BASE + RAM_SIZE - 16, 8, 0, F), /descriptor table/);
  });

  describe('indirect tables', () => {
    test('a valid indirect table', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      r.setDesc(IND, 0, DATA, 16, NEXT, 1);
      r.setDesc(IND, 1, DATA + 16, 4, WRITE);
      const res = walk(r, 0);
      assert.ok(res.ok);
      if (res.ok) assert.equal(res.chain.readLen + res.chain.writeLen, 20);
    });
    test('not negotiated', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      expectError(walk(r, 0, 8, { indirect: false, eventIdx: false }), /not negotiated/);
    });
    test('nested', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      r.setDesc(IND, 0, IND + 0x100, 16, INDIRECT);
      expectError(walk(r, 0), /nested/);
    });
    test('misaligned', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND + 8, 32, INDIRECT);
      expectError(walk(r, 0), /aligned/);
    });
    test('length not a multiple of 16', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 24, INDIRECT);
      expectError(walk(r, 0), /multiple of 16/);
    });
    test('zero length', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 0, INDIRECT);
      expectError(walk(r, 0), /multiple of 16/);
    });
    test('outside RAM', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, BASE + RAM_SIZE - 16, 32, INDIRECT);
      expectError(walk(r, 0), /indirect table .* outside guest RAM/);
    });
    test('with the NEXT flag', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT | NEXT, 1);
      expectError(walk(r, 0), /NEXT/);
    });
    test('a loop inside the table', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      r.setDesc(IND, 0, DATA, 4, NEXT, 1);
      r.setDesc(IND, 1, DATA, 4, NEXT, 0);
      expectError(walk(r, 0), /indirect chain longer than its table/);
    });
    test('next index outside the table', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      r.setDesc(IND, 0, DATA, 4, NEXT, 2);
      expectError(walk(r, 0), /outside the indirect table/);
    });
    test('write-only buffer before a readable one inside the table', () => {
      const r = new FakeRam();
      r.setDesc(DESC, 0, IND, 32, INDIRECT);
      r.setDesc(IND, 0, DATA, 4, WRITE | NEXT, 1);
      r.setDesc(IND, 1, DATA, 4, 0);
      expectError(walk(r, 0), /readable buffer after a writable/);
    });
  });
});

function readyQueue(r: FakeRam, size: number, features = F): Virtqueue {
  const q = new Virtqueue(r.mem, 256);
  q.size = size;
  q.descAddr = DESC;
  q.availAddr = AVAIL;
  q.usedAddr = USED;
  assert.equal(q.activate(features), null);
  return q;
}

describe('rings', () => {
  test('pop, push used, avail_event', () => {
    const r = new FakeRam();
    const q = readyQueue(r, 8);
    r.setDesc(DESC, 4, DATA, 8, WRITE);
    r.offer(8, 4);
    const p = q.pop();
    assert.equal(p.kind, 'chain');
    assert.equal(r.u16(USED + 4 + 8 * 8), 1, 'avail_event follows what the device took');
    assert.equal(q.pop().kind, 'empty');
    q.pushUsed(4, 8);
    assert.equal(r.usedIdx(), 1);
    assert.deepEqual(r.usedElem(8, 0), { id: 4, len: 8 });
  });

  test('a driver index too far ahead is an error', () => {
    const r = new FakeRam();
    const q = readyQueue(r, 8);
    r.setU16(AVAIL + 2, 9);
    const p = q.pop();
    assert.equal(p.kind, 'error');
  });

  test('event index suppresses interrupts until used_event is crossed', () => {
    const r = new FakeRam();
    const q = readyQueue(r, 8);
    const usedEvent = AVAIL + 4 + 2 * 8;
    q.pushUsed(0, 0);
    assert.equal(q.needsInterrupt(), true, 'first completion interrupts');
    r.setU16(usedEvent, 5); // driver: interrupt me when used idx passes 5
    q.pushUsed(0, 0); // idx 2
    assert.equal(q.needsInterrupt(), false);
    q.pushUsed(0, 0);
    q.pushUsed(0, 0);
    q.pushUsed(0, 0); // idx 5
    assert.equal(q.needsInterrupt(), false);
    q.pushUsed(0, 0); // idx 6: crossed used_event 5
    assert.equal(q.needsInterrupt(), true);
    assert.equal(q.needsInterrupt(), false, 'nothing new, no interrupt');
  });

  test('without event index, VIRTQ_AVAIL_F_NO_INTERRUPT suppresses', () => {
    const r = new FakeRam();
    const q = readyQueue(r, 8, { indirect: false, eventIdx: false });
    r.setU16(AVAIL, 1);
    q.pushUsed(0, 0);
    assert.equal(q.needsInterrupt(), false);
    r.setU16(AVAIL, 0);
    q.pushUsed(0, 0);
    assert.equal(q.needsInterrupt(), true);
  });

  test('rings outside RAM or misaligned are refused at QueueReady', () => {
    const r = new FakeRam();
    const q = new Virtqueue(r.mem, 256);
    q.size = 8;
    q.descAddr = BASE + RAM_SIZE - 64;
    q.availAddr = AVAIL;
    q.usedAddr = USED;
    assert.match(q.activate(F) ?? '', /outside guest RAM/);
    q.descAddr = DESC + 8;
    assert.match(q.activate(F) ?? '', /aligned/);
    q.descAddr = DESC;
    q.size = 6;
    assert.match(q.activate(F) ?? '', /power of two/);
  });
});

describe('virtio-mmio transport', () => {
  const rng = () => new VirtioRng((n) => new Uint8Array(n).fill(0xaa));

  test('identification and features', () => {
    const r = new FakeRam();
    const t = new VirtioMmio(rng(), { mem: r.mem, irq: () => {} });
    assert.equal(t.read(VIRTIO_MMIO_MAGIC_VALUE, 4), VIRTIO_MMIO_MAGIC);
    assert.equal(t.read(VIRTIO_MMIO_VERSION, 4), 2);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_ID, 4), 4);
    t.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 0);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), (1 << 28) | (1 << 29));
    t.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 1);
    assert.equal(t.read(VIRTIO_MMIO_DEVICE_FEATURES, 4), 1, 'VERSION_1');
    assert.equal(t.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 64);
  });

  test('FEATURES_OK is refused without VERSION_1 or with unoffered bits', () => {
    const r = new FakeRam();
    const t = new VirtioMmio(rng(), { mem: r.mem, irq: () => {} });
    t.write(VIRTIO_MMIO_STATUS, 4, 3);
    t.write(VIRTIO_MMIO_STATUS, 4, 3 | STATUS_FEATURES_OK);
    assert.equal(t.read(VIRTIO_MMIO_STATUS, 4) & STATUS_FEATURES_OK, 0);
    t.write(VIRTIO_MMIO_STATUS, 4, 0);
    t.write(VIRTIO_MMIO_STATUS, 4, 3);
    t.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, 1);
    t.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, 1 | 2); // VERSION_1 + an unoffered bit 33
    t.write(VIRTIO_MMIO_STATUS, 4, 3 | STATUS_FEATURES_OK);
    assert.equal(t.read(VIRTIO_MMIO_STATUS, 4) & STATUS_FEATURES_OK, 0);
  });

  test('entropy flows and a used-buffer interrupt is raised and acknowledged', () => {
    const h = bringUp(rng(), 8);
    h.ram.setDesc(DESC, 0, DATA, 16, WRITE);
    h.ram.offer(8, 0);
    h.notify();
    assert.deepEqual([...h.ram.bytes(DATA, 16)], new Array(16).fill(0xaa));
    assert.deepEqual(h.ram.usedElem(8, 0), { id: 0, len: 16 });
    assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4), INT_USED_BUFFER);
    assert.deepEqual(h.irq, [true]);
    h.transport.write(VIRTIO_MMIO_INTERRUPT_ACK, 4, INT_USED_BUFFER);
    assert.deepEqual(h.irq, [true, false]);
  });

  test('a bad chain: DEVICE_NEEDS_RESET, config interrupt, a log line, then nothing until reset', () => {
    const h = bringUp(rng(), 8);
    h.ram.setDesc(DESC, 0, DATA, 8, WRITE | NEXT, 0); // loop
    h.ram.offer(8, 0);
    h.notify();
    assert.ok(h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET);
    assert.ok(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4) & INT_CONFIG_CHANGE);
    assert.equal(h.logs.length, 1);
    assert.match(h.logs[0], /virtio-rng: .*longer than the queue.*needs reset/);
    // A good request is now ignored.
    h.ram.setDesc(DESC, 1, DATA, 8, WRITE);
    h.ram.offer(8, 1);
    h.notify();
    assert.equal(h.ram.usedIdx(), 0);
    // Reset clears everything.
    h.transport.write(VIRTIO_MMIO_STATUS, 4, 0);
    assert.equal(h.transport.read(VIRTIO_MMIO_STATUS, 4), 0);
    assert.equal(h.transport.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4), 0);
    assert.equal(h.irq.at(-1), false);
  });

  test('a device-readable buffer where the device must write: needs reset', () => {
    const h = bringUp(rng(), 8);
    h.ram.setDesc(DESC, 0, DATA, 8, 0);
    h.ram.offer(8, 0);
    h.notify();
    assert.ok(h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET);
    assert.match(h.logs[0], /device-readable/);
  });

  test('QueueReady with a ring outside RAM: needs reset', () => {
    const r = new FakeRam();
    const logs: string[] = [];
    const t = new VirtioMmio(rng(), { mem: r.mem, irq: () => {}, log: (m) => logs.push(m) });
    t.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    t.write(VIRTIO_MMIO_QUEUE_NUM, 4, 8);
    t.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 4, 0x1000);
    t.write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, 4, AVAIL >>> 0);
    t.write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, 4, USED >>> 0);
    t.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
    assert.equal(t.read(VIRTIO_MMIO_QUEUE_READY, 4), 0);
    assert.ok(t.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET);
    assert.match(logs[0], /descriptor table 0x1000 is outside guest RAM/);
  });
});

describe('property: random descriptor tables and rings', () => {
  const GUARD = 4096;

  test('walkChain never throws and only returns ranges inside RAM', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16 * 16, maxLength: 16 * 16 }),
        fc.constantFrom(1, 2, 4, 8, 16),
        fc.nat(20),
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(15), fc.integer({ min: -64, max: 0x2000 }), fc.nat(0x3000)), { maxLength: 16 }),
        (table, size, head, indirect, addrs) => {
          const r = new FakeRam(64 * 1024);
          r.ram.set(table, DESC - BASE);
          // Aim some descriptors at interesting places: near the RAM ends and at the table itself.
          for (const [i, a, len] of addrs) {
            r.dv.setBigUint64(DESC - BASE + 16 * i, BigInt.asUintN(64, BigInt(a < 0 ? BASE + 64 * 1024 + a : BASE + a * 8)), true);
            r.dv.setUint32(DESC - BASE + 16 * i + 8, len, true);
          }
          const res = walkChain(r.mem, DESC, size, head, { indirect, eventIdx: false });
          if (res.ok) {
            for (const b of [...res.chain.readable, ...res.chain.writable]) {
              assert.ok(b.off >= 0 && b.off + b.len <= r.ram.length, 'range inside RAM');
            }
          } else {
            assert.equal(typeof res.error, 'string');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('a device fed random rings never throws and never writes outside RAM', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0x5000, maxLength: 0x5000 }), fc.nat(4), (junk, rounds) => {
        const backing = new Uint8Array(64 * 1024 + 2 * GUARD).fill(0x55);
        const ram = backing.subarray(GUARD, GUARD + 64 * 1024);
        const fr = new FakeRam(64 * 1024);
        // Rebind the fake RAM onto the guarded block.
        const mem = { ram, base: BASE };
        ram.fill(0);
        const h = bringUp(new VirtioRng((n) => new Uint8Array(n).fill(0xaa)), 8, { ram: Object.assign(fr, { mem }) as FakeRam });
        ram.set(junk, DESC - BASE);
        for (let i = 0; i <= rounds; i++) h.notify();
        for (let i = 0; i < GUARD; i++) {
          assert.equal(backing[i], 0x55, 'guard below RAM untouched');
          assert.equal(backing[backing.length - 1 - i], 0x55, 'guard above RAM untouched');
        }
      }),
      { numRuns: 300 },
    );
  });
});
