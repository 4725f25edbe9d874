// The owner (main-thread) side of one VM: starts its worker, carries console bytes
// both ways, asks it to stop, and reports how it ended.

import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import {
  createSharedControl,
  type CommandReply,
  type CommandResult,
  type MachineDeviceStats,
  type RateLimits,
  type VmCommand,
  pushInput,
  readLive,
  requestPause,
  requestStatsReport,
  setCredit,
  type LiveCounters,
  requestStop,
  type SharedControl,
  type SnapshotResult,
  type RestoreSplit,
  type VmConfig,
  type GdbPortMessage,
  type WorkerMessage,
  wake,
} from './protocol.js';
import type { NicHost, NicStats } from '../net/nic-host.js';
import { LocalNics, type NicSet } from '../net/nic-set.js';
import { DeviceStatsReader } from './device-stats-block.js';
import { handOver, type WarmWorkers } from './warm-worker.js';
import { readHartStats, type HartReport } from './hart-stats-block.js';
import type { NicLimits } from '../devices/virtio/net.js';

/** How a VM ended: the guest's exit status (poweroff = 0) and why. */
export interface VmExit {
  code: number;
  reason: string;
}

export interface VmHandleEvents {
  /** Bytes the guest wrote to its console. */
  output: [data: Uint8Array];
  /** A problem the worker reported (the VM may still exit on its own afterwards). */
  warning: [message: string];
  /** A statistics report (text), answering requestStats() and sent at exit when asked for. */
  stats: [text: string];
  /** The VM was restored from a snapshot (VmConfig.restore) and is about to run. */
  restored: [info: RestoredInfo];
  /** A migrated VM (VmConfig.incoming) opened its disks and runs. */
  migrated: [info: { ms: number }];
  /** A snapshot was written because of VmConfig.snapshotAt. */
  snapshot: [result: SnapshotResult];
  /** Bytes from the VM's GDB stub for the attached debugger (with config.gdb). */
  gdb: [data: Uint8Array];
  /** The VM is gone; same value as `exited` resolves to. */
  exit: [result: VmExit];
}

export interface VmHandleOptions {
  /** Worker script to run instead of the real one (tests). */
  workerUrl?: URL;
  /** How long stop() waits for the worker to finish before terminating it (ms). */
  stopTimeoutMs?: number;
  /** Retry interval for console input that did not fit the input ring (ms). */
  inputRetryMs?: number;
  /** Heap limits for the worker thread (the daemon isolates each VM's JS heap). */
  resourceLimits?: ResourceLimits;
  /** Take the worker from here when one is ready (the daemon's warm worker). */
  warm?: WarmWorkers;
  /** The VM's NICs (eth0 first), backends on this thread or on an I/O thread (NicSet); the handle starts them with the worker and closes them when the VM ends. */
  nics?: NicHost[] | NicSet;
}

/** Absolute path of the compiled CPU core, build/cpu.wasm in the repo. */
export function defaultWasmPath(): string {
  // This file runs as dist/src/vm/vm-handle.js; the repo root is three levels up.
  return fileURLToPath(new URL('../../../build/cpu.wasm', import.meta.url));
}

/** The VM worker (worker.js beside this file). */
export function defaultWorkerUrl(): URL {
  return new URL('./worker.js', import.meta.url);
}

/** One line on a restore: "restored in N ms (guest memory mapped): where the time went". */
export function restoredText(r: RestoredInfo): string {
  const sp = r.split;
  const f = (ms: number) => ms.toFixed(1);
  const where = sp
    // The worker's part before the restore (thread start or hand-over, modules, disks), as the owner saw it.
    ? `: ${sp.warm ? (sp.preparedCore ? 'warm worker with a prepared core' : 'warm worker') : 'new worker'} ${f(r.sinceStartMs - r.ms)}, state read ${f(sp.readState)}, machine built ${f(sp.buildMachine)}, memory ${f(sp.loadMemory)}, devices ${f(sp.restoreState)} ms; ${f(r.sinceStartMs)} ms since the VM's start`
    : '';
  return `restored in ${f(r.ms)} ms (guest memory ${r.memory})${where}`;
}

type State = 'new' | 'running' | 'stopping' | 'exited';

/** A restore's figures: the worker's own (ms, split) and the owner's, from start() to the report. */
export interface RestoredInfo {
  ms: number;
  memory: 'mapped' | 'read';
  split?: RestoreSplit;
  sinceStartMs: number;
}

export class VmHandle extends EventEmitter<VmHandleEvents> {
  readonly config: VmConfig;
  /** Resolves once, when the VM has ended for whatever reason. Never rejects. */
  readonly exited: Promise<VmExit>;

  private readonly control: SharedControl;
  private readonly deviceReader: DeviceStatsReader;
  private readonly opts: Required<Omit<VmHandleOptions, 'workerUrl' | 'nics' | 'resourceLimits' | 'warm'>> & { workerUrl?: URL; resourceLimits?: ResourceLimits; warm?: WarmWorkers };
  private readonly nics: NicSet;
  private worker: Worker | null = null;
  private state: State = 'new';
  /** When start() ran (performance.now()). */
  private startedAt = 0;
  private resolveExit!: (r: VmExit) => void;
  private pending: Uint8Array[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private lastError: string | null = null;
  /** Owner end of the command port, and the commands waiting for their reply. */
  private commandPort: MessagePort | null = null;
  /** Owner end of the gdb channel (with config.gdb). */
  private gdbPort: MessagePort | null = null;
  private nextCommandId = 1;
  private readonly inFlight = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(config: VmConfig, options: VmHandleOptions = {}) {
    super();
    this.config = config;
    this.control = createSharedControl();
    this.deviceReader = new DeviceStatsReader(this.control.devices);
    this.opts = {
      workerUrl: options.workerUrl,
      stopTimeoutMs: options.stopTimeoutMs ?? 2000,
      inputRetryMs: options.inputRetryMs ?? 5,
      resourceLimits: options.resourceLimits,
      warm: options.warm,
    };
    const nics = options.nics ?? [];
    this.nics = Array.isArray(nics) ? new LocalNics(nics) : nics;
    this.exited = new Promise<VmExit>((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get running(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  /** Spawn the worker. Call once. */
  start(): void {
    if (this.state !== 'new') throw new Error('VmHandle.start() called twice');
    this.state = 'running';
    this.startedAt = performance.now();
    const url = this.opts.workerUrl ?? defaultWorkerUrl();
    let worker: Worker;
    const channel = new MessageChannel();
    const gdb = this.config.gdb ? new MessageChannel() : null;
    const workerData = { config: this.config, control: this.control, nics: this.nics.channels, commands: channel.port2, gdb: gdb?.port2 };
    const transferList = gdb ? [channel.port2, gdb.port2] : [channel.port2];
    try {
      const warm = this.opts.warm?.take(url, this.opts.resourceLimits, this.config.memMiB) ?? null;
      if (warm) handOver(warm, workerData, transferList);
      worker = warm ?? new Worker(url, { workerData, transferList, resourceLimits: this.opts.resourceLimits });
    } catch (e) {
      channel.port1.close();
      this.finish({ code: 1, reason: `cannot start the VM worker: ${errorText(e)}` });
      return;
    }
    this.worker = worker;
    this.nics.onWarning?.((m) => this.emit('warning', m));
    this.nics.start(this.control.ctrl);
    this.commandPort = channel.port1;
    channel.port1.on('message', (r: CommandReply) => this.onReply(r));
    // The port must not keep the owner's process alive by itself.
    channel.port1.unref();
    if (gdb) {
      this.gdbPort = gdb.port1;
      gdb.port1.on('message', (m: GdbPortMessage) => {
        if (m.type === 'data') this.emit('gdb', m.data);
      });
      gdb.port1.unref();
    }
    worker.on('message', (msg: WorkerMessage) => this.onMessage(msg));
    worker.on('error', (err: unknown) => {
      this.finish({ code: 1, reason: `VM worker failed: ${errorText(err)}` });
    });
    worker.on('messageerror', (err: unknown) => {
      this.emit('warning', `unreadable message from the VM worker: ${errorText(err)}`);
    });
    worker.on('exit', (workerCode: number) => {
      if (this.state === 'stopping') {
        this.finish({ code: 0, reason: 'stopped' });
      } else {
        const why = this.lastError ?? `VM worker exited unexpectedly (code ${workerCode})`;
        this.finish({ code: 1, reason: why });
      }
    });
  }

  /** Console input queued here because the guest's input ring was full (the daemon bounds it). */
  get pendingInputBytes(): number {
    let n = 0;
    for (const b of this.pending) n += b.length;
    return n;
  }

  /** Queue bytes for the guest's console. Bytes that do not fit yet are retried. */
  sendInput(bytes: Uint8Array): void {
    if (this.state === 'exited' || bytes.length === 0) return;
    this.pending.push(bytes.slice());
    this.flushInput();
  }

  /**
   * Ask the VM to stop; terminate its worker if it has not finished within the
   * stop timeout. Resolves with the same value as `exited`.
   */
  /** Pass a debugger's connection, bytes and hang-up to the VM's GDB stub (with config.gdb). */
  gdbPost(msg: GdbPortMessage): void {
    if (!this.gdbPort || this.state !== 'running') return;
    this.gdbPort.postMessage(msg);
    wake(this.control);
  }

  stop(): Promise<VmExit> {
    if (this.state === 'new') {
      this.state = 'stopping';
      this.finish({ code: 0, reason: 'stopped before start' });
    } else if (this.state === 'running') {
      this.state = 'stopping';
      requestStop(this.control);
      this.killTimer = setTimeout(() => {
        this.killTimer = null;
        if (this.state !== 'exited' && this.worker) {
          void this.worker.terminate();
        }
      }, this.opts.stopTimeoutMs);
    }
    return this.exited;
  }

  private onMessage(msg: WorkerMessage): void {
    if (this.state === 'exited') return;
    switch (msg.type) {
      case 'console': {
        const data = msg.data instanceof Uint8Array ? msg.data : new Uint8Array(msg.data as ArrayLike<number>);
        this.emit('output', data);
        break;
      }
      case 'exit':
        this.finish({ code: msg.code, reason: msg.reason });
        // The worker is expected to end by itself; make sure it does.
        void this.worker?.terminate();
        break;
      case 'stats':
        this.emit('stats', msg.text);
        break;
      case 'snapshot':
        this.emit('snapshot', msg.result);
        break;
      case 'restored':
        this.emit('restored', { ms: msg.ms, memory: msg.memory, split: msg.split, sinceStartMs: performance.now() - this.startedAt });
        break;
      case 'migrated':
        this.emit('migrated', { ms: msg.ms });
        break;
      case 'error':
        this.lastError = msg.message;
        this.emit('warning', msg.message);
        break;
      default:
        this.emit('warning', `unknown message from the VM worker: ${JSON.stringify(msg)}`);
    }
  }

  /** Pause the guest (its worker sleeps; guest time in deterministic mode stands still). */
  pause(): void {
    if (this.running) requestPause(this.control, true);
  }

  resume(): void {
    if (this.running) requestPause(this.control, false);
  }

  /** Let the guest run until it has retired `instret` instructions in all; -1n removes the limit. */
  setCredit(instret: bigint): void {
    setCredit(this.control, instret);
  }

  /** The worker's live counters (instructions, host time used, run state, heartbeat). */
  live(): LiveCounters {
    return readLive(this.control);
  }

  /** End the worker now, without asking (a hung VM); `exit` follows with `reason`. */
  kill(reason: string): Promise<VmExit> {
    if (this.state === 'exited') return this.exited;
    this.lastError = reason;
    if (this.worker) {
      const w = this.worker;
      void w.terminate().then(() => this.finish({ code: 1, reason }));
    } else {
      this.finish({ code: 1, reason });
    }
    return this.exited;
  }

  /** Counters of each NIC (device, backend, ring drops). */
  nicStats(): NicStats[] {
    return this.nics.stats();
  }

  /**
   * Send a command to the running worker (see VmCommand in protocol.ts). Resolves
   * with its result; rejects with the worker's message if it refused, or when the
   * VM is not running or ends before answering. Buffers in `transfer` move
   * to the worker instead of being copied (they are unusable here after).
   */
  command<C extends VmCommand>(cmd: C, transfer: ArrayBuffer[] = []): Promise<CommandResult<C>> {
    if (!this.running || !this.commandPort) return Promise.reject(new Error('the VM is not running'));
    const id = this.nextCommandId++;
    const p = new Promise<CommandResult<C>>((resolve, reject) => {
      this.inFlight.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.commandPort.postMessage({ id, command: cmd }, transfer);
    // The worker sees commands between slices; wake it if the guest is idle.
    wake(this.control);
    return p;
  }

  /** Write a snapshot of the running VM into `dir` (new or empty); the VM goes on. */
  snapshot(dir: string, overlays?: (string | null)[]): Promise<SnapshotResult> {
    return this.command(overlays ? { type: 'snapshot', dir, overlays } : { type: 'snapshot', dir });
  }

  /** Change the I/O limits of disk `index` (as in VmDiskConfig.limits; {} removes them). */
  /** Replace the rate limits of NIC `index` (0 = eth0); {} removes them. */
  async setNicLimits(index: number, limits: NicLimits): Promise<void> {
    await this.command({ type: 'setNicLimits', nic: index, limits });
  }

  async setDiskLimits(index: number, limits: RateLimits): Promise<void> {
    await this.command({ type: 'setDiskLimits', disk: index, limits });
  }

  /** Set the balloon target in MiB: the guest gives that much of its RAM back (0 returns it all). */
  async setBalloonTarget(mib: number): Promise<void> {
    await this.command({ type: 'setBalloonTarget', mib });
  }

  /** Disk counters and balloon state as the worker last published them (at most a few hundred ms old); never waits. */
  sharedDeviceStats(): MachineDeviceStats {
    return this.deviceReader.read();
  }

  /** Each hart's state and counters as the worker last published them (at most a few hundred ms old); never waits. */
  hartStats(): HartReport[] {
    return readHartStats(this.control.harts, this.config.cpus ?? 1);
  }

  /** Disk counters and balloon state, asked of the worker; `refresh` also asks the guest for new memory statistics. */
  deviceStats(refresh = false): Promise<MachineDeviceStats> {
    return this.command({ type: 'deviceStats', refresh });
  }

  private onReply(r: CommandReply): void {
    const w = this.inFlight.get(r.id);
    if (!w) return;
    this.inFlight.delete(r.id);
    if (r.ok) w.resolve(r.result);
    else w.reject(new Error(r.error));
  }

  /** Ask the worker for a statistics report (a 'stats' event follows). */
  requestStats(): void {
    if (this.running) requestStatsReport(this.control);
  }

  private flushInput(): void {
    if (this.retryTimer) return; // a retry is already scheduled
    while (this.pending.length > 0 && this.state !== 'exited') {
      const head = this.pending[0];
      const n = pushInput(this.control, head);
      if (n === head.length) {
        this.pending.shift();
      } else {
        this.pending[0] = head.subarray(n);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.flushInput();
        }, this.opts.inputRetryMs);
        return;
      }
    }
  }

  private finish(result: VmExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    if (this.killTimer) clearTimeout(this.killTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.killTimer = this.retryTimer = null;
    this.pending = [];
    for (const w of this.inFlight.values()) w.reject(new Error(`the VM ended: ${result.reason}`));
    this.inFlight.clear();
    this.commandPort?.close();
    this.commandPort = null;
    // Host sockets of the NICs close before the VM counts as gone.
    void this.nics.close().then(() => {
      this.resolveExit(result);
      this.emit('exit', result);
    });
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
