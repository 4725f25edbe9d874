// Lifecycle events and failures for the API and the web console: a bounded
// list for the host (every event, VM or not) and one per VM. The oldest go
// first. With a file (the daemon's state directory) each event is appended
// there as it happens and read back at the next start, so the list outlives
// a restart or a crash of the daemon.

import { JsonLinesFile } from './json-lines-file.js';

export type EventLevel = 'info' | 'warning' | 'error';

export interface HostEvent {
  /** ISO 8601 time. */
  time: string;
  /** The VM it is about, or null for the daemon itself. */
  vm: string | null;
  /** Short machine-readable kind: created, started, stopped, failed, paused, resumed, restarted, changed, snapshot, deleted, migrated, daemon. */
  kind: string;
  level: EventLevel;
  message: string;
}

export const HOST_EVENTS = 1000;
export const VM_EVENTS = 200;
const MAX_MESSAGE = 500;
const MAX_KIND = 32;
/** Appended lines beyond the last compaction before the events file is rewritten. */
const EVENTS_SLACK_BYTES = 1024 * 1024;
const EVENTS_MAX_READ_BYTES = 16 * 1024 * 1024;

/** An event read back from the file, or null if it is not one. */
function checkEvent(v: unknown): HostEvent | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const e = v as Record<string, unknown>;
  if (typeof e.time !== 'string' || e.time.length > 40 || Number.isNaN(Date.parse(e.time))) return null;
  if (e.vm !== null && (typeof e.vm !== 'string' || e.vm.length === 0 || e.vm.length > 63)) return null;
  if (typeof e.kind !== 'string' || e.kind.length === 0 || e.kind.length > MAX_KIND) return null;
  if (e.level !== 'info' && e.level !== 'warning' && e.level !== 'error') return null;
  if (typeof e.message !== 'string') return null;
  return { time: e.time, vm: e.vm, kind: e.kind, level: e.level, message: e.message.slice(0, MAX_MESSAGE) };
}

export interface EventLogOptions {
  hostCapacity?: number;
  vmCapacity?: number;
  file?: string;
  log?: (msg: string) => void;
}

export class EventLog {
  private readonly all: HostEvent[] = [];
  private readonly perVm = new Map<string, HostEvent[]>();
  /** Order of arrival, for a compaction that merges the host list and the VMs' lists. */
  private readonly seq = new WeakMap<HostEvent, number>();
  private next = 0;
  private readonly hostCapacity: number;
  private readonly vmCapacity: number;
  private readonly file: JsonLinesFile | null;
  private readonly log: (msg: string) => void;

  constructor(opts: EventLogOptions = {}) {
    this.hostCapacity = opts.hostCapacity ?? HOST_EVENTS;
    this.vmCapacity = opts.vmCapacity ?? VM_EVENTS;
    this.log = opts.log ?? (() => {});
    this.file = opts.file
      ? new JsonLinesFile(opts.file, { state: () => this.records(), slackBytes: EVENTS_SLACK_BYTES, maxReadBytes: EVENTS_MAX_READ_BYTES, log: this.log })
      : null;
  }

  add(vm: string | null, kind: string, message: string, level: EventLevel = 'info'): HostEvent {
    const e: HostEvent = { time: new Date().toISOString(), vm, kind, level, message: message.slice(0, MAX_MESSAGE) };
    this.keep(e);
    this.file?.append(e);
    return e;
  }

  private keep(e: HostEvent): void {
    this.seq.set(e, this.next++);
    this.all.push(e);
    if (this.all.length > this.hostCapacity) this.all.shift();
    if (e.vm !== null) {
      let list = this.perVm.get(e.vm);
      if (!list) this.perVm.set(e.vm, (list = []));
      list.push(e);
      if (list.length > this.vmCapacity) list.shift();
    }
  }

  /** Read back the events of earlier runs (at start, before any new event). */
  load(): { events: number; skipped: number } {
    if (!this.file) return { events: 0, skipped: 0 };
    const { records, skipped } = this.file.load();
    let bad = skipped;
    for (const r of records) {
      const e = checkEvent(r);
      if (!e) {
        bad++;
        continue;
      }
      // A VM deleted then: its own list went with it (as forget() did at the time).
      if (e.kind === 'deleted' && e.vm !== null) this.perVm.delete(e.vm);
      this.keep(e);
    }
    if (bad > 0) this.log(`${this.file.path}: ${bad} unreadable record${bad === 1 ? '' : 's'} skipped`);
    return { events: this.all.length, skipped: bad };
  }

  /** Every event kept now (the host's and the VMs' lists), in the order they happened: what a compaction writes. */
  private records(): HostEvent[] {
    const set = new Set<HostEvent>(this.all);
    for (const list of this.perVm.values()) for (const e of list) set.add(e);
    return [...set].sort((a, b) => this.seq.get(a)! - this.seq.get(b)!);
  }

  /** Every event, oldest first. */
  host(): HostEvent[] {
    return [...this.all];
  }

  vm(name: string): HostEvent[] {
    return [...(this.perVm.get(name) ?? [])];
  }

  /** A deleted VM's own list goes (the host list keeps its events: they happened). */
  forget(name: string): void {
    this.perVm.delete(name);
  }

  /** Events not yet written reach the file. */
  async close(): Promise<void> {
    await this.file?.close();
  }
}
