// The MMIO mailbox of SMP phase 2 (src/vm/mmio-mailbox.ts): hart threads make
// device accesses that the device thread serves in one order. Two hart threads
// write and read back registers of their own (every access size), read an
// address with no device, and write more in a row than the ring holds; each
// sees its own values and the fault, with writes waiting for their answers and
// with writes posted (not waited for). A posted write is served before any
// later request of the same hart and of a hart that posted after it; only
// writes of 1, 2 or 4 bytes inside a declared range are posted, so a write that
// may fault still raises its fault. A request no hart should post is answered
// with a fault, a throwing device is a fault, and a hart whose device thread is
// gone gets an error instead of waiting forever.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createMmioMailbox, MmioClient, MmioServer, MMIO_KIND, MMIO_RING_ENTRIES } from '../src/vm/mmio-mailbox.js';
import { budget } from './lib/budget.js';

for (const posted of [false, true]) {
  test(`two hart threads read back their own writes through the device thread, and see faults (writes ${posted ? 'posted' : 'waited for'})`, { timeout: budget(60_000) }, async () => {
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
    if (posted) server.setPostable([{ base: 0x1000_0000, size: 0x2000 }]);
    const doorbell = new Int32Array(new SharedArrayBuffer(4));
    const done = new Int32Array(new SharedArrayBuffer(4));
    const url = new URL('./lib/mmio-client-worker.js', import.meta.url);
    const results = Array.from({ length: harts }, (_, hart) => {
      const w = new Worker(url, { workerData: { sab, hart, count, doorbell, done } });
      return new Promise<{ mismatches: number; faults: number; error: string; posted: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
    });
    // The device thread's loop: serve (and poll on a while after requests), then sleep on the doorbell until a request (or the end) rings it.
    while (Atomics.load(done, 0) < harts) {
      const rung = Atomics.load(doorbell, 0);
      if (server.serve() > 0) server.poll();
      else Atomics.wait(doorbell, 0, rung, 100);
    }
    server.serve();
    const burst = 3 * MMIO_RING_ENTRIES;
    for (const r of await Promise.all(results)) {
      assert.equal(r.error, '');
      assert.equal(r.mismatches, 0, 'every read gave the value last written, and the unmapped read faulted');
      assert.equal(r.faults, 0, 'no write faulted');
      // Sizes 1, 2, 4 of the first loop (3 in 4) and the whole burst; 8-byte writes always wait.
      assert.equal(r.posted, posted ? (count * 3) / 4 + burst : 0);
    }
    assert.equal(seen.writes, harts * (count + burst));
    assert.equal(seen.reads, harts * (count + 16));
    assert.equal(server.served, harts * (2 * count + Math.ceil(count / 64) + burst + 16));
    assert.equal(server.posted, posted ? harts * ((count * 3) / 4 + burst) : 0);
    assert.equal(server.pending(), 0);
  });
}

/**
 * A test whose device thread is its own thread would hang if a write it expects
 * to be posted waited for an answer: a thread of its own closes the mailbox
 * after `ms`, so that write throws instead.
 */
function watchdog(sab: SharedArrayBuffer, ms: number): Worker {
  const url = new URL('../src/vm/mmio-mailbox.js', import.meta.url).href;
  return new Worker(
    `const { workerData } = require('node:worker_threads');
     import(workerData.url).then((m) => setTimeout(() => new m.MmioServer(workerData.sab, () => ({ value: 0, fault: true })).close(), workerData.ms));`,
    { eval: true, workerData: { sab, ms, url } },
  );
}

test('posted writes are served in order before later requests of any hart; writes that may fault wait for their fault', async () => {
  const sab = createMmioMailbox(2);
  const dog = watchdog(sab, budget(10_000));
  try {
    postedWritesInOrder(sab);
  } finally {
    await dog.terminate();
  }
});

function postedWritesInOrder(sab: SharedArrayBuffer): void {
  const log: string[] = [];
  const regs = new Map<number, number>();
  const server = new MmioServer(sab, (write, addr, size, value) => {
    log.push(`${write ? 'w' : 'r'} ${addr.toString(16)}/${size}${write ? `=${value}` : ''}`);
    if (addr === 0x1000_0040) throw new Error('device broke');
    if (addr >= 0x2000_0000) return { value: 0, fault: true };
    if (write) regs.set(addr, value);
    return { value: regs.get(addr) ?? 0, fault: false };
  });
  server.setPostable([{ base: 0x1000_0000, size: 0x100 }]);
  const h0 = new MmioClient(sab, 0);
  const h1 = new MmioClient(sab, 1);
  // Only 1, 2 and 4 bytes wholly inside a declared range.
  assert.equal(h0.postable(0x1000_0000, 1), true);
  assert.equal(h0.postable(0x1000_00fc, 4), true);
  assert.equal(h0.postable(0x1000_00fe, 4), false, 'runs past the range');
  assert.equal(h0.postable(0x1000_0000, 8), false, '8 bytes');
  assert.equal(h0.postable(0x0fff_ffff, 1), false);
  assert.equal(h0.postable(0x2000_0000, 4), false);
  // Hart 1 posts two writes; they return at once (nothing served yet), without a fault.
  assert.equal(h1.write(0x1000_0008, 4, 5), false);
  assert.equal(h1.write(0x1000_0008, 1, 6), false);
  assert.deepEqual(log, [], 'not served yet');
  // Hart 0, after hart 1's writes (say it took a lock hart 1 released), reads the register:
  // the writes come first although hart 0's requests would be looked at first by hart number.
  const r = h0.post(MMIO_KIND.read, 0x1000_0008, 4, 0);
  // A write that may fault (no declared range there) waits and gets its fault.
  const w = h1.post(MMIO_KIND.write, 0x2000_0000, 4, 1);
  assert.equal(server.pending(), 4);
  assert.equal(server.serve(), 4);
  assert.deepEqual(log, ['w 10000008/4=5', 'w 10000008/1=6', 'r 10000008/4', 'w 20000000/4=1']);
  assert.deepEqual(h0.answer(r), { value: 6, fault: false });
  assert.deepEqual(h1.answer(w), { value: 0, fault: true });
  // A posted write whose device throws (a device bug) is counted: nobody waits to take the fault.
  assert.equal(h0.write(0x1000_0040, 4, 1), false);
  assert.equal(server.serve(), 1);
  assert.equal(server.postedFaults, 1);
  assert.equal(server.posted, 3);
  // Every slot's oldest request shows in the hang dump.
  h1.post(MMIO_KIND.read, 0x1000_0010, 4, 0);
  assert.deepEqual(server.slots(), [{ state: 0, addr: 0 }, { state: 1, addr: 0x1000_0010 }]);
  server.serve();
  assert.deepEqual(server.slots(), [{ state: 0, addr: 0 }, { state: 0, addr: 0 }]);
}

test('a bad request or a throwing device is a fault; a closed device thread is an error, not a hang', () => {
  const sab = createMmioMailbox(1);
  const server = new MmioServer(sab, () => {
    throw new Error('device broke');
  });
  const client = new MmioClient(sab, 0, undefined, 10);
  // What no hart would post: size 3, an unknown kind.
  const a = client.post(MMIO_KIND.read, 0x1000_0000, 3, 0);
  assert.equal(server.serve(), 1);
  assert.deepEqual(client.answer(a), { value: 0, fault: true });
  const b = client.post(7, 0x1000_0000, 4, 0);
  assert.equal(server.serve(), 1);
  assert.deepEqual(client.answer(b), { value: 0, fault: true });
  const c = client.post(MMIO_KIND.read, 0x1000_0000, 4, 0);
  assert.equal(server.serve(), 1);
  assert.deepEqual(client.answer(c), { value: 0, fault: true }, 'the device threw');
  server.close();
  assert.throws(() => client.read(0x1000_0000, 4), /device thread is gone/);
  assert.throws(() => createMmioMailbox(9), /outside 1\.\.8/);
  assert.throws(() => new MmioClient(sab, 1), /no slot for hart 1/);
});

test('the device thread polls on after serving only while polling pays', () => {
  const sab = createMmioMailbox(1);
  const server = new MmioServer(sab, () => ({ value: 5, fault: false }));
  const client = new MmioClient(sab, 0);
  // A request that comes while it polls is served by the poll.
  const a = client.post(MMIO_KIND.read, 0x1000_0000, 4, 0);
  assert.equal(server.poll(), 1);
  assert.deepEqual(client.answer(a), { value: 5, fault: false });
  // Nothing comes: the poll ends (after its idle window), and the next poll is skipped.
  assert.equal(server.poll(), 0);
  assert.equal(server.pollMisses, 1);
  const b = client.post(MMIO_KIND.read, 0x1000_0000, 4, 0);
  assert.equal(server.poll(), 0, 'skipped');
  assert.equal(server.pending(), 1);
  assert.equal(server.serve(), 1);
  assert.deepEqual(client.answer(b), { value: 5, fault: false });
  // After the skip it polls again, and a poll that serves something ends the backing off.
  const c = client.post(MMIO_KIND.read, 0x1000_0000, 4, 0);
  assert.equal(server.poll(), 1);
  client.answer(c);
  assert.deepEqual([server.pollHits, server.pollMisses], [2, 1]);
});
