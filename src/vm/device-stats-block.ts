// Device counters (disks, balloon) published by a VM's worker in shared
// memory, so the owner reads them at any time without a message round trip:
// the worker, which only sees messages between slices, is never waited on.
// The block holds a JSON snapshot guarded by a sequence number (odd while the
// worker writes); a reader that catches a write in progress keeps its last
// good snapshot.

import type { MachineDeviceStats } from '../machine/virt.js';

const HDR_SEQ = 0;
const HDR_LEN = 1;
const HDR_INTS = 2;
/** Room for the JSON snapshot: six disks and a balloon with guest statistics take about 4 KiB. */
export const DEVICE_STATS_BYTES = 32 * 1024;
/** How often the worker publishes (ms of host time). */
export const DEVICE_STATS_PUBLISH_MS = 200;

export const NO_DEVICE_STATS: MachineDeviceStats = { disks: [], balloon: null };

export function createDeviceStatsBlock(): SharedArrayBuffer {
  return new SharedArrayBuffer(HDR_INTS * 4 + DEVICE_STATS_BYTES);
}

/** Worker side. */
export function publishDeviceStats(sab: SharedArrayBuffer, stats: MachineDeviceStats): void {
  const hdr = new Int32Array(sab, 0, HDR_INTS);
  const bytes = new TextEncoder().encode(JSON.stringify(stats));
  if (bytes.length > DEVICE_STATS_BYTES) return; // cannot happen with the devices a VM may have; keep the last snapshot
  Atomics.add(hdr, HDR_SEQ, 1); // odd: writing
  new Uint8Array(sab, HDR_INTS * 4, bytes.length).set(bytes);
  Atomics.store(hdr, HDR_LEN, bytes.length);
  Atomics.add(hdr, HDR_SEQ, 1); // even: done
}

/** Owner side: reads the latest snapshot; never blocks. */
export class DeviceStatsReader {
  private last: MachineDeviceStats = NO_DEVICE_STATS;
  private lastSeq = 0;
  private readonly hdr: Int32Array;

  constructor(private readonly sab: SharedArrayBuffer) {
    this.hdr = new Int32Array(sab, 0, HDR_INTS);
  }

  read(): MachineDeviceStats {
    for (let attempt = 0; attempt < 3; attempt++) {
      const seq = Atomics.load(this.hdr, HDR_SEQ);
      if (seq === this.lastSeq) return this.last;
      if (seq & 1) continue;
      const len = Atomics.load(this.hdr, HDR_LEN);
      const copy = new Uint8Array(len);
      copy.set(new Uint8Array(this.sab, HDR_INTS * 4, len));
      if (Atomics.load(this.hdr, HDR_SEQ) !== seq) continue; // written meanwhile
      try {
        this.last = JSON.parse(new TextDecoder().decode(copy)) as MachineDeviceStats;
        this.lastSeq = seq;
      } catch {
        // a torn copy cannot pass the sequence check; keep the last snapshot regardless
      }
      return this.last;
    }
    return this.last;
  }
}
