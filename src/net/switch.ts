// A virtual L2 switch linking the NICs of several VMs: learns which port each
// source MAC lives on, forwards unicast frames to that port only, and floods
// broadcast, multicast and unknown destinations to every other port. Each frame
// is copied once, into the receiving VM's ring (the sender's frame is a view of
// its own ring).

import { countFromGuest, emptyCounters, type NetBackend, type NetCounters } from './backend.js';
import { formatMac } from './mac.js';

/** Forget a MAC that has not been seen for this long, as bridges do (802.1D default). */
const AGEING_MS = 300_000;

export interface SwitchPortStats {
  port: number;
  label: string;
  counters: NetCounters;
}

interface Learned {
  port: SwitchPort;
  seen: number;
}

export class VirtualSwitch {
  private readonly ports = new Set<SwitchPort>();
  private readonly table = new Map<string, Learned>();
  private nextId = 1;

  constructor(readonly name: string, private readonly now: () => number = Date.now) {}

  /** A new port; it joins the switch when its owner calls start(). */
  port(label: string): SwitchPort {
    return new SwitchPort(this, this.nextId++, label);
  }

  get portCount(): number {
    return this.ports.size;
  }

  /** @internal */
  join(p: SwitchPort): void {
    this.ports.add(p);
  }

  /** @internal */
  leave(p: SwitchPort): void {
    this.ports.delete(p);
    for (const [mac, l] of this.table) if (l.port === p) this.table.delete(mac);
  }

  /** @internal Forward a frame that entered through `from`. */
  forward(from: SwitchPort, frame: Uint8Array): void {
    const now = this.now();
    const src = macKey(frame, 6);
    if ((frame[6] & 1) === 0) this.table.set(src, { port: from, seen: now });
    if ((frame[0] & 1) === 0) {
      const l = this.table.get(macKey(frame, 0));
      if (l && now - l.seen < AGEING_MS && this.ports.has(l.port)) {
        if (l.port !== from) l.port.deliver(frame);
        return;
      }
    }
    for (const p of this.ports) if (p !== from) p.deliver(frame);
  }

  stats(): SwitchPortStats[] {
    return [...this.ports].map((p) => ({ port: p.id, label: p.label, counters: p.counters() }));
  }

  /** The learned table, for inspection: MAC -> port id. */
  macTable(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [mac, l] of this.table) out[mac] = l.port.id;
    return out;
  }
}

function macKey(frame: Uint8Array, at: number): string {
  return formatMac(frame.subarray(at, at + 6));
}

/** One port of a switch, as the backend of a VM's NIC. */
export class SwitchPort implements NetBackend {
  readonly description: string;
  private toGuest: ((frame: Uint8Array) => void) | null = null;
  private readonly c = emptyCounters();

  constructor(private readonly sw: VirtualSwitch, readonly id: number, readonly label: string) {
    this.description = `switch ${sw.name} port ${id}`;
  }

  start(toGuest: (frame: Uint8Array) => void): void {
    this.toGuest = toGuest;
    this.sw.join(this);
  }

  fromGuest(frame: Uint8Array): void {
    if (countFromGuest(this.c, frame)) this.sw.forward(this, frame);
  }

  /** @internal A frame for this port's VM. */
  deliver(frame: Uint8Array): void {
    if (!this.toGuest) return;
    this.c.txToGuestFrames++;
    this.c.txToGuestBytes += frame.length;
    this.toGuest(frame);
  }

  counters(): NetCounters {
    return { ...this.c };
  }

  async close(): Promise<void> {
    this.toGuest = null;
    this.sw.leave(this);
  }
}

/** The switches of this process, by name (`--net switch=NAME`). */
const switches = new Map<string, VirtualSwitch>();

export function namedSwitch(name: string): VirtualSwitch {
  let s = switches.get(name);
  if (!s) {
    s = new VirtualSwitch(name);
    switches.set(name, s);
  }
  return s;
}
