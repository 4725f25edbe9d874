// A bounded history of each VM and of the host, sampled at a fixed interval
// (default one hour at 2 s) for the web console's graphs: CPU share, MIPS,
// memory touched, disk and network throughput. Throughput is the difference
// of the device counters between two samples of the same run (a counter that
// went back means the VM started again: that interval counts nothing). Served
// column-wise ({t: [...], cpuShare: [...], ...}), the shape charts read.
// With a file (the daemon's state directory) every sample is also appended
// there and read back at the next start, so the graphs outlive a restart; a
// sample of nulls at the start marks the time the daemon was down.

import type { VmSupervisor } from './vm-supervisor.js';
import { JsonLinesFile } from './json-lines-file.js';

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

  /** Replace the contents with columns read back (the newest `capacity` samples). */
  fill(t: number[], cols: Record<HistoryField, (number | null)[]>): void {
    const from = Math.max(0, t.length - this.capacity);
    this.t.length = 0;
    this.t.push(...t.slice(from));
    for (const f of HISTORY_FIELDS) {
      this.cols[f].length = 0;
      this.cols[f].push(...cols[f].slice(from));
    }
    this.start = 0;
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
  /** Keep the samples in this file (JSON lines) and read them back at start. */
  file?: string;
  log?: (msg: string) => void;
}

/** Appended lines beyond the last compaction before the history file is rewritten. */
const HISTORY_SLACK_BYTES = 4 * 1024 * 1024;
const HISTORY_MAX_READ_BYTES = 64 * 1024 * 1024;

type Columns = { t: number[] } & Record<HistoryField, (number | null)[]>;

const isValue = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v));
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 63;

/** A record of the history file: a whole ring (written by compaction), one sample of everything, or a VM forgotten. */
function checkColumns(r: Record<string, unknown>): Columns | null {
  const t = r.t;
  if (!Array.isArray(t) || !t.every(isTime)) return null;
  for (const f of HISTORY_FIELDS) {
    const c = r[f];
    if (!Array.isArray(c) || c.length !== t.length || !c.every(isValue)) return null;
  }
  return r as unknown as Columns;
}

function checkSample(v: unknown): (number | null)[] | null {
  return Array.isArray(v) && v.length === HISTORY_FIELDS.length && v.every(isValue) ? v : null;
}

/** Samples every VM and the host totals on a timer. */
export class HistoryRecorder {
  readonly intervalMs: number;
  readonly points: number;
  private readonly vmRings = new Map<string, HistoryRing>();
  private readonly last = new Map<string, Counters>();
  readonly host: HistoryRing;
  private timer: NodeJS.Timeout | null = null;
  private readonly file: JsonLinesFile | null;
  private readonly log: (msg: string) => void;

  constructor(private readonly vms: () => Iterable<VmSupervisor>, opts: HistoryOptions = {}) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_HISTORY_INTERVAL_MS;
    this.points = opts.points ?? DEFAULT_HISTORY_POINTS;
    this.host = new HistoryRing(this.points);
    this.log = opts.log ?? (() => {});
    this.file = opts.file
      ? new JsonLinesFile(opts.file, { state: () => this.records(), slackBytes: HISTORY_SLACK_BYTES, maxReadBytes: HISTORY_MAX_READ_BYTES, log: this.log })
      : null;
  }

  /**
   * Read back what the file holds, keeping the VMs in `names` (the others
   * were deleted meanwhile), then mark the time the daemon was down with a
   * sample of nulls. Returns how many samples of the host were restored.
   */
  load(names: ReadonlySet<string>, now = Date.now()): { samples: number; skipped: number } {
    if (!this.file) return { samples: 0, skipped: 0 };
    const { records, skipped } = this.file.load();
    let bad = skipped;
    const rings = new Map<string | null, Columns>();
    const ring = (vm: string | null): Columns => {
      let c = rings.get(vm);
      if (!c) rings.set(vm, (c = { t: [], ...(Object.fromEntries(HISTORY_FIELDS.map((f) => [f, []])) as unknown as Record<HistoryField, (number | null)[]>) }));
      return c;
    };
    const push = (c: Columns, t: number, v: (number | null)[]) => {
      c.t.push(t);
      HISTORY_FIELDS.forEach((f, i) => c[f].push(v[i]!));
      // Lines appended since the last compaction may be many: keep the columns near their bound while reading.
      if (c.t.length > 2 * this.points) {
        const cut = c.t.length - this.points;
        c.t.splice(0, cut);
        for (const f of HISTORY_FIELDS) c[f].splice(0, cut);
      }
    };
    for (const rec of records) {
      const r = rec as Record<string, unknown>;
      if (typeof r !== 'object' || r === null) {
        bad++;
        continue;
      }
      if (r.k === 'ring' && (r.vm === null || isName(r.vm)) && checkColumns(r)) {
        const cols = checkColumns(r)!;
        const c = ring(r.vm as string | null);
        c.t.length = 0;
        for (const f of HISTORY_FIELDS) c[f].length = 0;
        cols.t.forEach((t, i) => push(c, t, HISTORY_FIELDS.map((f) => cols[f][i]!)));
      } else if (r.k === 's' && isTime(r.t) && checkSample(r.host) && typeof r.vms === 'object' && r.vms !== null && !Array.isArray(r.vms)) {
        const vms = Object.entries(r.vms as Record<string, unknown>);
        if (!vms.every(([n, v]) => isName(n) && checkSample(v))) {
          bad++;
          continue;
        }
        push(ring(null), r.t, r.host as (number | null)[]);
        for (const [n, v] of vms) push(ring(n), r.t, v as (number | null)[]);
      } else if (r.k === 'forget' && isName(r.vm)) {
        rings.delete(r.vm);
      } else bad++;
    }
    const gap = Object.fromEntries(HISTORY_FIELDS.map((f) => [f, null])) as HistorySample;
    for (const [vm, cols] of rings) {
      if (vm !== null && !names.has(vm)) continue;
      const target = vm === null ? this.host : new HistoryRing(this.points);
      target.fill(cols.t, cols);
      if (target.length > 0) target.push(now, gap);
      if (vm !== null) this.vmRings.set(vm, target);
    }
    if (bad > 0) this.log(`${this.file.path}: ${bad} unreadable record${bad === 1 ? '' : 's'} skipped`);
    return { samples: this.host.length, skipped: bad };
  }

  /** What a compaction of the file writes: every ring as it is now. */
  private records(): unknown[] {
    return [
      { k: 'ring', vm: null, ...this.host.toJSON() },
      ...[...this.vmRings].map(([vm, r]) => ({ k: 'ring', vm, ...r.toJSON() })),
    ];
  }

  /** Samples not yet written reach the file. */
  async close(): Promise<void> {
    this.stop();
    await this.file?.close();
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
    const written: Record<string, (number | null)[]> = {};
    const row = (s: HistorySample) => HISTORY_FIELDS.map((f) => s[f]);
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
        const none: HistorySample = { cpuShare: null, mips: null, memoryTouchedMiB: null, diskReadBps: null, diskWriteBps: null, netRxBps: null, netTxBps: null };
        ring.push(now, none);
        written[vm.name] = row(none);
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
      written[vm.name] = row(s);
      for (const f of HISTORY_FIELDS) total[f] += s[f] ?? 0;
    }
    for (const f of HISTORY_FIELDS) total[f] = round(total[f], 1e4);
    this.host.push(now, total);
    this.file?.append({ k: 's', t: now, host: row(total), vms: written });
  }

  forget(name: string): void {
    this.vmRings.delete(name);
    this.last.delete(name);
    this.file?.append({ k: 'forget', vm: name });
  }

  vm(name: string): ReturnType<HistoryRing['toJSON']> & { intervalMs: number; capacity: number } {
    const ring = this.vmRings.get(name) ?? new HistoryRing(this.points);
    return { intervalMs: this.intervalMs, capacity: this.points, ...ring.toJSON() };
  }

  hostJSON(): ReturnType<HistoryRing['toJSON']> & { intervalMs: number; capacity: number } {
    return { intervalMs: this.intervalMs, capacity: this.points, ...this.host.toJSON() };
  }
}
