// Token buckets with a fake clock: refill, bursts, oversized requests, updates,
// counters, and a property test that nothing ever gets through faster than
// size + rate * time + burst. Plus virtio-blk holding requests back at device level.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimiter, TokenBucket, checkLimits, perSecond } from '../src/devices/rate-limiter.js';
import { VirtioBlk } from '../src/devices/virtio/blk/device.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_S_OK } from '../src/devices/virtio/blk/request.js';
import { VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE } from '../src/devices/virtio/queue.js';
import { RawDisk } from '../src/storage/raw.js';
import { bringUp, BASE, DESC, DATA } from './fixtures/virtio-driver.js';

function fakeClock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('a bucket starts full, refills continuously and never beyond its size', () => {
  const c = fakeClock();
  const l = new RateLimiter(c.now, { bandwidth: { size: 1000, refillMs: 1000 } });
  assert.equal(l.tryConsume(1000, 1), true);
  assert.equal(l.tryConsume(1, 1), false);
  assert.equal(l.blocked, true);
  assert.equal(Math.round(l.nextRefillDelay()), 1);
  c.t = 500;
  assert.equal(l.tryConsume(600, 1), false);
  assert.equal(Math.round(l.nextRefillDelay()), 100);
  c.t = 600;
  assert.equal(l.tryConsume(600, 1), true);
  assert.equal(l.blocked, false);
  c.t = 100_000;
  assert.equal(Math.round(l.available().bandwidth!), 1000);
});

test('the one-time burst is spent first and does not come back', () => {
  const c = fakeClock();
  const l = new RateLimiter(c.now, { ops: { size: 10, refillMs: 1000, oneTimeBurst: 5 } });
  for (let i = 0; i < 15; i++) assert.equal(l.tryConsume(0, 1), true, `op ${i}`);
  assert.equal(l.tryConsume(0, 1), false);
  c.t = 10_000;
  assert.equal(l.available().ops, 10);
});

test('both buckets must agree; a refused request takes nothing', () => {
  const c = fakeClock();
  const l = new RateLimiter(c.now, { bandwidth: perSecond(1000), ops: perSecond(2) });
  assert.equal(l.tryConsume(100, 1), true);
  assert.equal(l.tryConsume(100, 1), true);
  assert.equal(l.tryConsume(100, 1), false); // ops empty
  assert.equal(Math.round(l.available().bandwidth!), 800);
  assert.equal(Math.round(l.nextRefillDelay()), 500);
});

test('a request larger than the bucket goes once it is full and leaves a debt', () => {
  const c = fakeClock();
  const b = new TokenBucket({ size: 100, refillMs: 100 }, 0);
  assert.equal(b.canTake(250, 0), true);
  b.take(250, 0);
  assert.equal(b.available(0), -150);
  assert.equal(b.delayFor(250, 0), 250); // back to full first
  c.t = 0;
});

test('update replaces changed buckets (full again) and keeps unchanged ones', () => {
  const c = fakeClock();
  const l = new RateLimiter(c.now, { bandwidth: perSecond(1000), ops: perSecond(10) });
  l.tryConsume(1000, 10);
  l.update({ bandwidth: perSecond(1000), ops: perSecond(20) });
  assert.equal(Math.round(l.available().bandwidth!), 0);
  assert.equal(l.available().ops, 20);
  l.update({});
  assert.equal(l.active, false);
  assert.equal(l.tryConsume(1e9, 1e9), true);
  assert.throws(() => l.update({ bandwidth: { size: 0, refillMs: 1 } }), RangeError);
  assert.match(checkLimits({ ops: { size: 1, refillMs: -1 } }) ?? '', /refill/);
});

test('counters: bytes, ops, throttled events and time', () => {
  const c = fakeClock();
  const l = new RateLimiter(c.now, { bandwidth: perSecond(100) });
  l.tryConsume(100, 1);
  assert.equal(l.tryConsume(50, 1), false);
  c.t = 200;
  assert.equal(l.tryConsume(50, 1), false); // same episode
  c.t = 500;
  assert.equal(l.tryConsume(50, 1), true);
  const s = l.stats();
  assert.deepEqual(s, { bytes: 150, ops: 2, throttledEvents: 1, throttledMs: 500 });
});

test('property: consumption never exceeds size + rate * elapsed + burst', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.array(fc.record({ dt: fc.integer({ min: 0, max: 3000 }), frac: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 200 }),
      (size, refillMs, burst, steps) => {
        const c = fakeClock();
        const l = new RateLimiter(c.now, { bandwidth: { size, refillMs, oneTimeBurst: burst } });
        let consumed = 0;
        for (const s of steps) {
          c.t += s.dt;
          const n = Math.max(1, Math.floor(s.frac * size)); // requests up to the bucket size
          if (l.tryConsume(n, 0)) consumed += n;
          const bound = size + burst + (size / refillMs) * c.t;
          if (consumed > bound + 1e-3) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
});

test('virtio-blk holds a request back until poll() at its deadline, and counts it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-rl-'));
  try {
    const p = join(dir, 'd.img');
    writeFileSync(p, new Uint8Array(1 << 20).fill(7));
    const c = fakeClock();
    const blk = new VirtioBlk({ backend: RawDisk.open(p, { readOnly: true }), limits: { bandwidth: perSecond(8192) }, clock: c.now });
    const h = bringUp(blk, 16);
    const r = h.ram;
    const read = (head: number, hdr: number, buf: number, st: number) => {
      r.dv.setUint32(hdr - BASE, VIRTIO_BLK_T_IN, true);
      r.dv.setBigUint64(hdr - BASE + 8, 0n, true);
      r.setDesc(DESC, head, hdr, 16, NEXT, head + 1);
      r.setDesc(DESC, head + 1, buf, 4096, NEXT | WRITE, head + 2);
      r.setDesc(DESC, head + 2, st, 1, WRITE);
      r.offer(16, head);
    };
    for (let i = 0; i < 3; i++) read(i * 3, DATA + i * 0x20, DATA + 0x1000 + i * 0x1000, DATA + 0x10 + i * 0x20);
    h.notify();
    assert.equal(r.usedIdx(), 2, 'the bucket held 8 KiB: two reads went through');
    assert.equal(blk.stats().throttled, true);
    const d = h.transport.nextDeadline();
    assert.ok(d !== null && Math.abs(d - 500) < 1e-6, `deadline ${d}`);
    c.t = 250;
    h.transport.poll();
    assert.equal(r.usedIdx(), 2, 'not before its time');
    c.t = 500;
    h.transport.poll();
    assert.equal(r.usedIdx(), 3);
    assert.equal(r.ram[DATA + 0x10 + 2 * 0x20 - BASE], VIRTIO_BLK_S_OK);
    const s = blk.stats();
    assert.equal(s.readBytes, 3 * 4096);
    assert.equal(s.readOps, 3);
    assert.equal(s.throttledEvents, 1);
    assert.equal(s.throttledMs, 500);
    assert.equal(h.transport.nextDeadline(), null);
    // Lifting the limit serves a held request at the next poll.
    read(0, DATA, DATA + 0x1000, DATA + 0x10);
    read(3, DATA + 0x20, DATA + 0x2000, DATA + 0x30);
    h.notify();
    assert.equal(r.usedIdx(), 3);
    blk.setLimits({});
    h.transport.poll();
    assert.equal(r.usedIdx(), 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a VmConfig with unusable limits or balloon settings is refused before boot', async () => {
  const { checkDeviceConfig } = await import('../src/vm/commands.js');
  const base = { kernel: 'k', append: '', memMiB: 64, deterministic: true, wasmPath: 'w' };
  assert.equal(checkDeviceConfig({ ...base, disks: [{ path: 'a', limits: { bandwidth: perSecond(1) } }], balloon: true }), null);
  assert.match(checkDeviceConfig({ ...base, disks: [{ path: 'a', limits: { ops: { size: 0, refillMs: 1000 } } }] }) ?? '', /disk 0 \(a\): ops: size/);
  assert.match(checkDeviceConfig({ ...base, balloon: { targetMiB: -5 } }) ?? '', /balloon target/);
});

test('--stats lines for disks and the balloon', async () => {
  const { deviceStatsLines } = await import('../src/vm/stats.js');
  const lines = deviceStatsLines({
    disks: [{
      index: 0, name: 'virtio-blk0', readBytes: 3 * 1048576, writeBytes: 0, readOps: 3, writeOps: 0, otherOps: 1,
      throttledEvents: 2, throttledMs: 1500, throttled: false, limits: { bandwidth: perSecond(1048576, 4096), ops: null },
    }],
    balloon: {
      targetPages: 256, actualPages: 256, targetMiB: 1, actualMiB: 1, inflatedPages: 256, pagesInflated: 256, pagesDeflated: 0,
      reports: 2, reportedBytes: 8 * 1048576, scrubbedBytes: 0, releasedToHostBytes: 0,
      guest: { memTotal: 100 * 1048576, memFree: 50 * 1048576 }, guestStatsAtMs: 5, statsQueue: true, freePageReporting: true,
    },
  });
  assert.match(lines[0], /read 3\.0 MiB in 3 ops.*limit 1,048,576 bytes\/s \(\+4,096 burst\), throttled 2 times for 1\.50 s/);
  assert.match(lines[1], /target 1\.0 MiB, guest holds 1\.0 MiB.*returned to host 0.*MemTotal 100\.0 MiB, MemFree 50\.0 MiB/);
});
