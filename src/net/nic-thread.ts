// NIC backends of one VM on an I/O thread of their own, so a guest that floods
// its network loads that thread, not the daemon's event loop. Frames already
// travel on shared rings (nic-channel.ts); the backends' own counters are
// published by the thread into a SharedArrayBuffer, so stats() never waits.

import { Worker } from 'node:worker_threads';
import type { NicChannelInit } from './nic-channel.js';
import { readDeviceCounters } from './nic-channel.js';
import { FrameRing } from './frame-ring.js';
import { formatMac } from './mac.js';
import type { NicStats } from './nic-host.js';
import type { NicSpec } from './nic-spec.js';
import type { NicSet } from './nic-set.js';
import type { NetCounters } from './backend.js';

export const NET_COUNTER_KEYS: readonly (keyof NetCounters)[] = ['rxFromGuestFrames', 'rxFromGuestBytes', 'txToGuestFrames', 'txToGuestBytes', 'dropped'];

/** What the owner passes to the I/O thread. */
export interface NicThreadInit {
  specs: NicSpec[];
  vmName: string;
  /** NET_COUNTER_KEYS.length float64s per NIC, written by the thread. */
  hostCounters: SharedArrayBuffer;
}

export type FromNicThread =
  | { type: 'ready'; channels: NicChannelInit[]; descriptions: string[] }
  | { type: 'failed'; message: string }
  | { type: 'closed' };

export type ToNicThread = { type: 'start'; wakeCtrl: Int32Array } | { type: 'close' };

/** How long close() waits for the thread to close its sockets before ending it. */
const CLOSE_TIMEOUT_MS = 3000;

export class NicThread implements NicSet {
  private closing: Promise<void> | null = null;
  private readonly rings: { toHost: FrameRing; toGuest: FrameRing }[];

  private constructor(
    private readonly worker: Worker,
    readonly channels: NicChannelInit[],
    private readonly descriptions: string[],
    private readonly hostCounters: Float64Array,
  ) {
    this.rings = channels.map((c) => ({ toHost: new FrameRing(c.toHost), toGuest: new FrameRing(c.toGuest) }));
  }

  /** Start the thread and its backends; rejects with the backend's error if one cannot start. */
  static async open(specs: NicSpec[], vmName: string): Promise<NicThread> {
    const hostCounters = new SharedArrayBuffer(Math.max(1, specs.length) * NET_COUNTER_KEYS.length * 8);
    const init: NicThreadInit = { specs, vmName, hostCounters };
    const worker = new Worker(new URL('./nic-thread-main.js', import.meta.url), { workerData: init });
    const first = await new Promise<FromNicThread>((resolve) => {
      worker.once('message', resolve);
      worker.once('error', (e) => resolve({ type: 'failed', message: e instanceof Error ? e.message : String(e) }));
      worker.once('exit', (code) => resolve({ type: 'failed', message: `the NIC thread exited (code ${code})` }));
    });
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    if (first.type !== 'ready') {
      await worker.terminate();
      throw new Error(first.type === 'failed' ? first.message : 'the NIC thread closed at once');
    }
    const t = new NicThread(worker, first.channels, first.descriptions, new Float64Array(hostCounters));
    // A backend error after start must not become an uncaught error of the daemon: the VM carries on without network, and the owner is told.
    worker.on('error', (e) => t.warn(`the NIC thread failed, the VM's network is down: ${e instanceof Error ? e.message : String(e)}`));
    return t;
  }

  private warn: (message: string) => void = () => {};

  onWarning(fn: (message: string) => void): void {
    this.warn = fn;
  }

  start(wakeCtrl: Int32Array): void {
    this.worker.postMessage({ type: 'start', wakeCtrl } satisfies ToNicThread);
  }

  stats(): NicStats[] {
    const k = NET_COUNTER_KEYS.length;
    return this.channels.map((ch, i) => {
      const host = {} as NetCounters;
      NET_COUNTER_KEYS.forEach((key, j) => (host[key] = this.hostCounters[i * k + j]));
      return {
        mac: formatMac(ch.mac),
        backend: this.descriptions[i],
        device: readDeviceCounters(ch),
        host,
        ringDrops: { toHost: this.rings[i].toHost.dropped, toGuest: this.rings[i].toGuest.dropped },
      };
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate(), CLOSE_TIMEOUT_MS);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.on('message', (m: FromNicThread) => {
        if (m.type === 'closed') void this.worker.terminate();
      });
      this.worker.postMessage({ type: 'close' } satisfies ToNicThread);
    });
    return this.closing;
  }
}
