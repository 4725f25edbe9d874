// The NICs of one VM as its VmHandle sees them, wherever their backends run:
// on the owner's thread (LocalNics: `tsvisor run`, a VM's own process) or on
// an I/O thread of their own (NicThread, thread VMs of the daemon). Either way
// the worker only sees the shared rings and counters of each NIC's channel.

import type { NicChannelInit } from './nic-channel.js';
import type { NicHost, NicStats } from './nic-host.js';

export interface NicSet {
  /** One channel per NIC, eth0 first: passed to the VM's worker. */
  readonly channels: NicChannelInit[];
  /** Start carrying frames; `wakeCtrl` is the VM's control block, bumped and notified at its wake slot when a frame is queued for the guest. */
  start(wakeCtrl: Int32Array): void;
  /** Counters of each NIC; never waits on another thread. */
  stats(): NicStats[];
  /** Close the backends (host sockets); resolves when they are closed. */
  close(): Promise<void>;
  /** Where problems of the backends go once they run (a NIC thread that failed). */
  onWarning?(fn: (message: string) => void): void;
}

/** Wake the VM's worker: what protocol.ts's wake() does, given only the control block. */
export function wakeSlot(ctrl: Int32Array): void {
  Atomics.add(ctrl, 0, 1); // CTRL_WAKE
  Atomics.notify(ctrl, 0);
}

/** Backends on this thread. */
export class LocalNics implements NicSet {
  readonly channels: NicChannelInit[];
  constructor(private readonly hosts: NicHost[]) {
    this.channels = hosts.map((h) => h.channel);
  }
  start(wakeCtrl: Int32Array): void {
    for (const h of this.hosts) h.start(() => wakeSlot(wakeCtrl));
  }
  stats(): NicStats[] {
    return this.hosts.map((h) => h.stats());
  }
  async close(): Promise<void> {
    await Promise.allSettled(this.hosts.map((h) => h.close()));
  }
}
