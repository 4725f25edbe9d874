// Lifecycle events and failures, kept in memory for the API and the web
// console: a bounded list for the host (every event, VM or not) and one per
// VM. The oldest go first; nothing here touches the disk.

export type EventLevel = 'info' | 'warning' | 'error';

export interface HostEvent {
  /** ISO 8601 time. */
  time: string;
  /** The VM it is about, or null for the daemon itself. */
  vm: string | null;
  /** Short machine-readable kind: created, started, stopped, failed, paused, resumed, restarted, changed, snapshot, deleted, daemon. */
  kind: string;
  level: EventLevel;
  message: string;
}

export const HOST_EVENTS = 1000;
export const VM_EVENTS = 200;
const MAX_MESSAGE = 500;

export class EventLog {
  private readonly all: HostEvent[] = [];
  private readonly perVm = new Map<string, HostEvent[]>();

  constructor(private readonly hostCapacity = HOST_EVENTS, private readonly vmCapacity = VM_EVENTS) {}

  add(vm: string | null, kind: string, message: string, level: EventLevel = 'info'): HostEvent {
    const e: HostEvent = { time: new Date().toISOString(), vm, kind, level, message: message.slice(0, MAX_MESSAGE) };
    this.all.push(e);
    if (this.all.length > this.hostCapacity) this.all.shift();
    if (vm !== null) {
      let list = this.perVm.get(vm);
      if (!list) this.perVm.set(vm, (list = []));
      list.push(e);
      if (list.length > this.vmCapacity) list.shift();
    }
    return e;
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
}
