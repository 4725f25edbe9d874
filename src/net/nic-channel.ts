// What a VM's worker and the owner's thread share for one NIC: two frame rings
// (guest to host, host to guest) and the device's counters, all on
// SharedArrayBuffers so no frame goes through postMessage.

import type { NicDeviceCounters, NicLimits, NicPort } from '../devices/virtio/net.js';
import { DEFAULT_RING_BYTES, FrameRing } from './frame-ring.js';

/** Structured-cloneable: passes to the worker in its workerData. */
export interface NicChannelInit {
  mac: number[];
  toHost: SharedArrayBuffer;
  toGuest: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /** Rate limits per direction, if any. */
  limits?: NicLimits;
}

export const DEVICE_COUNTERS: readonly (keyof NicDeviceCounters)[] = ['txFrames', 'txBytes', 'txDropped', 'rxFrames', 'rxBytes', 'rxDropped'];

export function createNicChannel(mac: Uint8Array, limits?: NicLimits, ringBytes = DEFAULT_RING_BYTES): NicChannelInit {
  return {
    limits,
    mac: [...mac],
    toHost: FrameRing.create(ringBytes).sab,
    toGuest: FrameRing.create(ringBytes).sab,
    counters: new SharedArrayBuffer(DEVICE_COUNTERS.length * 8),
  };
}

/** The worker's side: the device's NicPort and its counter sink. */
export interface WorkerNic {
  mac: Uint8Array;
  port: NicPort;
  count: (c: keyof NicDeviceCounters, n: number) => void;
  limits?: NicLimits;
  /** Wake the owner's side if frames were queued since the last call (the worker calls it between slices). */
  flush(): void;
}

export function workerNic(ch: NicChannelInit): WorkerNic {
  const toHost = new FrameRing(ch.toHost);
  // Frames to the host are announced once per slice, not one by one: the backend then
  // handles them as a batch (user networking ACKs a batch once), which halves the
  // frames and interrupts the guest handles per byte it sends.
  let queued = false;
  const toGuest = new FrameRing(ch.toGuest);
  // Only the worker writes these, so plain (non-atomic) float stores are enough.
  const counters = new Float64Array(ch.counters);
  const index = new Map(DEVICE_COUNTERS.map((k, i) => [k, i]));
  return {
    limits: ch.limits,
    mac: Uint8Array.from(ch.mac),
    port: {
      send: (parts, length) => {
        const ok = toHost.push(parts, length, false);
        queued ||= ok;
        return ok;
      },
      peek: () => toGuest.peek(),
      consume: () => toGuest.consume(),
    },
    count: (c, n) => {
      counters[index.get(c)!] += n;
    },
    flush: () => {
      if (!queued) return;
      queued = false;
      toHost.notify();
    },
  };
}

export function readDeviceCounters(ch: NicChannelInit): NicDeviceCounters {
  const c = new Float64Array(ch.counters);
  const out = {} as NicDeviceCounters;
  DEVICE_COUNTERS.forEach((k, i) => (out[k] = c[i]));
  return out;
}
