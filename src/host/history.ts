// A bounded history of each VM and of the host, sampled at a fixed interval
// (default one hour at 2 s) for the web console's graphs: CPU share, MIPS,
// memory touched, disk and network throughput. Throughput is the difference
// of the device counters between two samples of the same run (a counter that
// went back means the VM started again: that interval counts nothing). Served
// column-wise ({t: [...], cpuShare: [...], ...}), the shape charts read.

import type { VmSupervisor } from './vm-supervisor.js';

export const HISTORY_FIELDS = ['cpuShare', 'mips', 'memoryTouchedMiB', 'diskReadBps', 'diskWriteBps', 'netRxBps', 'netTxBps'] as const;
export type HistoryField = (typeof HISTORY_FIELDS)[number];
export type HistorySample = Record<HistoryField, number | null>;

export const DEFAULT_HISTORY_INTERVAL_MS = 2000;
export const DEFAULT_HISTORY_POINTS = 1800;

/** Fixed-capacity columns: the oldest sample goes when a new one comes. */
export class HistoryRing {
  private readonly t: number[] = [];
  private readonly cols: Record<HistoryField, (number | null)[]>;
  private start = 0;

  constructor(readonly capacity: number) {
    this.cols = Object.fromEntries(HISTORY_FIELDS.map((f) => [f, []])) as unknown as Record<HistoryField, (number | null)[]>;
  }

  get length(): number {
    return this.t.length;
  }

  push(t: number, s: HistorySample): void {
    if (this.t.length < this.capacity) {
      this.t.push(t);
      for (const f of HISTORY_FIELDS) this.cols[f].push(s[f]);
      return;
    }
    this.t[this.start] = t;
    for (const f of HISTORY_FIELDS) this.cols[f][this.start] = s[f];
    this.start = (this.start + 1) % this.capacity;
  }

  /** Oldest first; `t` in ms since the epoch. */
  toJSON(): { t: number[] } & Record<HistoryField, (number | null)[]> {
    const order = <T>(a: T[]) => [...a.slice(this.start), ...a.slice(0, this.start)];
    return { t: order(this.t), ...(Object.fromEntries(HISTORY_FIELDS.map((f) => [f, order(this.cols[f])])) as Record<HistoryField, (number | null)[]>) };
  }
}

interface Counters {
  at: number;
  run: number; // the VM's startedAt: a new run starts its counters at 0
  diskRead: number;
  diskWrite: number;
  netRx: number;
  netTx: number;
}

function countersOf(vm: VmSupervisor, at: number): Counters | null {
  const h = vm.handle;
  if (!h) return null;
  let diskRead = 0;
  let diskWrite = 0;
  for (const d of h.sharedDeviceStats().disks) {
    diskRead += d.readBytes;
    diskWrite += d.writeBytes;
  }
  let netRx = 0;
  let netTx = 0;
  for (const n of h.nicStats()) {
    netRx += n.device.rxBytes;
    netTx += n.device.txBytes;
  }
  return { at, run: vm.startedAt, diskRead, diskWrite, netRx, netTx };
}

const round = (v: number, scale: number) => Math.round(v * scale) / scale;
const rate = (now: number, before: number, ms: number) => (now >= before && ms > 0 ? ((now - before) * 1000) / ms : 0);

export interface HistoryOptions {
  intervalMs?: number;
  points?: number;
}

/** Samples every VM and the host totals on a timer. */
export class HistoryRecorder {
  readonly intervalMs: number;
  readonly points: number;
  private readonly vmRings = new Map<string, HistoryRing>();
  private readonly last = new Map<string, Counters>();
  readonly host: HistoryRing;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly vms: () => Iterable<VmSupervisor>, opts: HistoryOptions = {}) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_HISTORY_INTERVAL_MS;
    this.points = opts.points ?? DEFAULT_HISTORY_POINTS;
    this.host = new HistoryRing(this.points);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(Date.now()), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample of every VM (null fields while it is not running) and their sum for the host. */
  sample(now: number): void {
    const total: Record<HistoryField, number> = { cpuShare: 0, mips: 0, memoryTouchedMiB: 0, diskReadBps: 0, diskWriteBps: 0, netRxBps: 0, netTxBps: 0 };
    for (const vm of this.vms()) {
      let ring = this.vmRings.get(vm.name);
      if (!ring) {
        ring = new HistoryRing(this.points);
        this.vmRings.set(vm.name, ring);
      }
      const c = countersOf(vm, now);
      const prev = this.last.get(vm.name);
      if (!c) {
        this.last.delete(vm.name);
        ring.push(now, { cpuShare: null, mips: null, memoryTouchedMiB: null, diskReadBps: null, diskWriteBps: null, netRxBps: null, netTxBps: null });
        continue;
      }
      this.last.set(vm.name, c);
      const same = prev !== undefined && prev.run === c.run;
      const ms = same ? c.at - prev.at : 0;
      const live = vm.live();
      // Rounded: a graph needs no more, and an hour of samples stays small as JSON.
      const s: HistorySample = {
        cpuShare: round(vm.window.cpuShare, 1e4),
        mips: round(vm.window.mips, 100),
        memoryTouchedMiB: live && live.ramResidentBytes >= 0 ? round(live.ramResidentBytes / 1048576, 10) : null,
        diskReadBps: same ? Math.round(rate(c.diskRead, prev.diskRead, ms)) : 0,
        diskWriteBps: same ? Math.round(rate(c.diskWrite, prev.diskWrite, ms)) : 0,
        netRxBps: same ? Math.round(rate(c.netRx, prev.netRx, ms)) : 0,
        netTxBps: same ? Math.round(rate(c.netTx, prev.netTx, ms)) : 0,
      };
      ring.push(now, s);
      for (const f of HISTORY_FIELDS) total[f] += s[f] ?? 0;
    }
    for (const f of HISTORY_FIELDS) total[f] = round(total[f], 1e4);
    this.host.push(now, total);
  }

  forget(name: string): void {
    this.vmRings.delete(name);
    this.last.delete(name);
  }

  vm(name: string): ReturnType<HistoryRing['toJSON']> & { intervalMs: number; capacity: number } {
    const ring = this.vmRings.get(name) ?? new HistoryRing(this.points);
    return { intervalMs: this.intervalMs, capacity: this.points, ...ring.toJSON() };
  }

  hostJSON(): ReturnType<HistoryRing['toJSON']> & { intervalMs: number; capacity: number } {
    return { intervalMs: this.intervalMs, capacity: this.points, ...this.host.toJSON() };
  }
}
