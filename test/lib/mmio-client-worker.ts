// A hart thread of test/mmio-mailbox.test.ts: `count` accesses through the
// mailbox to a register file of the test (reads and writes of every size, and
// reads of an address with no device), then a burst of writes longer than the
// ring with every register read back after it; then it says what it saw.

import { parentPort, workerData } from 'node:worker_threads';
import { MmioClient, MMIO_RING_ENTRIES } from '../../src/vm/mmio-mailbox.js';

interface Job {
  sab: SharedArrayBuffer;
  hart: number;
  count: number;
  doorbell: Int32Array;
  /** Incremented when this thread is done (the device loop ends when every hart is). */
  done: Int32Array;
}

const job = workerData as Job;
const client = new MmioClient(job.sab, job.hart, { words: job.doorbell, index: 0 });
const base = 0x1000_0000 + job.hart * 0x1000;
let mismatches = 0;
let faults = 0;
let error = '';
try {
  for (let i = 0; i < job.count; i++) {
    const size = [1, 2, 4, 8][i & 3]!;
    const mask = size === 8 ? 0xffff_ffff : 2 ** (8 * size) - 1;
    const value = (i * 2654435761) % mask;
    const reg = base + 8 * (i % 16);
    if (client.write(reg, size, value)) faults++;
    const back = client.read(reg, size);
    if (back.fault || back.value !== value) mismatches++;
    if (i % 64 === 0 && !client.read(0x2000_0000, 4).fault) mismatches++; // no device there
  }
  // More writes in a row than the ring holds (posted ones wait for room), then each register's last value.
  const last = new Map<number, number>();
  for (let i = 0; i < 3 * MMIO_RING_ENTRIES; i++) {
    const reg = base + 8 * (i % 16);
    const value = (i * 40503 + job.hart) & 0xffff_ffff;
    if (client.write(reg, 4, value)) faults++;
    last.set(reg, value);
  }
  for (const [reg, value] of last) if (client.read(reg, 4).value !== value) mismatches++;
} catch (e) {
  error = (e as Error).message;
}
Atomics.add(job.done, 0, 1);
Atomics.add(job.doorbell, 0, 1);
Atomics.notify(job.doorbell, 0);
parentPort!.postMessage({ mismatches, faults, error, posted: client.counts.posted });
