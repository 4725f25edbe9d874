// The owner's side of one NIC: carries frames between the worker's rings and a
// NetBackend. Frames from the guest are handed to the backend as views into the
// ring (no copy); frames for the guest are copied once, into the ring, and the
// worker is woken so an idle guest sees them at once.

import type { NetBackend, NetCounters } from './backend.js';
import { FrameRing } from './frame-ring.js';
import { createNicChannel, readDeviceCounters, type NicChannelInit } from './nic-channel.js';
import type { NicDeviceCounters, NicLimits } from '../devices/virtio/net.js';
import { formatMac } from './mac.js';

/** Frames handled per turn before yielding to the event loop (host sockets need it). */
const BATCH = 256;

export interface NicStats {
  mac: string;
  backend: string;
  /** The guest's device: what it sent and received, and malformed frames it dropped. */
  device: NicDeviceCounters;
  /** The backend's own counters. */
  host: NetCounters;
  /** Frames lost because a ring was full (guest to host, host to guest). */
  ringDrops: { toHost: number; toGuest: number };
}

export class NicHost {
  readonly channel: NicChannelInit;
  private readonly toHost: FrameRing;
  private readonly toGuest: FrameRing;
  private closed = false;
  private pumping: Promise<void> | null = null;
  private wakeWorker: () => void = () => {};

  constructor(readonly backend: NetBackend, mac: Uint8Array, limits?: NicLimits) {
    this.channel = createNicChannel(mac, limits);
    this.toHost = new FrameRing(this.channel.toHost);
    this.toGuest = new FrameRing(this.channel.toGuest);
  }

  /** Start carrying frames; `wake` rouses the VM's worker after a frame was queued for it. */
  start(wake: () => void): void {
    if (this.pumping) return;
    this.wakeWorker = wake;
    this.backend.start((frame) => {
      if (this.closed) return;
      if (this.toGuest.push([frame], frame.length)) this.wakeWorker();
    });
    this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    while (!this.closed) {
      const seen = this.toHost.signal;
      let n = 0;
      for (let f = this.toHost.peek(); f && n < BATCH; f = this.toHost.peek(), n++) {
        try {
          this.backend.fromGuest(f);
        } catch {
          // A backend must not throw on guest data; if one does, the frame is lost, not the VM.
        }
        this.toHost.consume();
      }
      if (n === BATCH) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      const w = this.toHost.waitAsync(seen, 1000);
      if (w) await w;
    }
  }

  stats(): NicStats {
    return {
      mac: formatMac(this.channel.mac),
      backend: this.backend.description,
      device: readDeviceCounters(this.channel),
      host: this.backend.counters(),
      ringDrops: { toHost: this.toHost.dropped, toGuest: this.toGuest.dropped },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Wake the pump so it sees `closed` (no frame is queued for it).
    this.toHost.notify();
    await this.pumping;
    await this.backend.close();
  }
}
