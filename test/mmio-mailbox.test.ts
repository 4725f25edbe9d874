// The MMIO mailbox of SMP phase 2 (src/vm/mmio-mailbox.ts): hart threads make
// blocking device accesses that the device thread answers. Two hart threads
// write and read back registers of their own (every access size) and read an
// address with no device at the same time; each sees its own values and the
// fault, and the device thread saw every request. A request no hart should
// post is answered with a fault, a throwing device is a fault, and a hart
// whose device thread is gone gets an error instead of waiting forever.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createMmioMailbox, MmioClient, MmioServer } from '../src/vm/mmio-mailbox.js';
import { budget } from './lib/budget.js';

test('two hart threads read back their own writes through the device thread, and see faults', { timeout: budget(60_000) }, async () => {
  const harts = 2;
  const count = 5000;
  const sab = createMmioMailbox(harts);
  const regs = new Map<number, number>();
  const seen = { reads: 0, writes: 0 };
  const server = new MmioServer(sab, (write, addr, size, value) => {
    if (addr >= 0x2000_0000) return { value: 0, fault: true };
    if (write) {
      seen.writes++;
      regs.set(addr, value);
      return { value: 0, fault: false };
    }
    seen.reads++;
    const mask = size === 8 ? 2 ** 53 - 1 : 2 ** (8 * size) - 1;
    return { value: (regs.get(addr) ?? 0) % (mask + 1), fault: false };
  });
  const doorbell = new Int32Array(new SharedArrayBuffer(4));
  const done = new Int32Array(new SharedArrayBuffer(4));
  const url = new URL('./lib/mmio-client-worker.js', import.meta.url);
  const results = Array.from({ length: harts }, (_, hart) => {
    const w = new Worker(url, { workerData: { sab, hart, count, doorbell, done } });
    return new Promise<{ mismatches: number; faults: number; error: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  });
  // The device thread's loop: serve, then sleep on the doorbell until a request (or the end) rings it.
  while (Atomics.load(done, 0) < harts) {
    const rung = Atomics.load(doorbell, 0);
    if (server.serve() === 0) Atomics.wait(doorbell, 0, rung, 100);
  }
  server.serve();
  for (const r of await Promise.all(results)) {
    assert.equal(r.error, '');
    assert.equal(r.mismatches, 0, 'every read gave the value written, and the unmapped read faulted');
    assert.equal(r.faults, 0, 'no write faulted');
  }
  assert.equal(seen.writes, harts * count);
  assert.equal(seen.reads, harts * count);
  assert.equal(server.served, harts * (2 * count + Math.ceil(count / 64)));
});

test('a bad request or a throwing device is a fault; a closed device thread is an error, not a hang', () => {
  const sab = createMmioMailbox(1);
  const server = new MmioServer(sab, () => {
    throw new Error('device broke');
  });
  // Post by hand what no MmioClient would: size 3.
  const i32 = new Int32Array(sab);
  i32[1] = 0;
  i32[2] = 3;
  Atomics.store(i32, 0, 1);
  assert.equal(server.serve(), 1);
  assert.equal(i32[0], 2, 'answered');
  assert.equal(i32[3], 1, 'as a fault');
  Atomics.store(i32, 0, 0);
  server.close();
  const client = new MmioClient(sab, 0, undefined, 10);
  assert.throws(() => client.read(0x1000_0000, 4), /device thread is gone/);
  assert.throws(() => createMmioMailbox(9), /outside 1\.\.8/);
  assert.throws(() => new MmioClient(sab, 1), /no slot for hart 1/);
});
