// The daemon's side of a VM in its own process (isolation "process"): forks
// vm-process.ts, talks to it on the IPC channel, and offers what the daemon
// uses of a VmHandle (VmRunner). Reads that must be synchronous (live(),
// nicStats()) answer from the last report the child pushed, at most
// REPORT_INTERVAL_MS (25 ms) old. However the child ends (guest exit, stop,
// crash, SIGKILL from anyone, silence), `exit` follows with a reason, and
// no child is left behind when the daemon exits.

import { EventEmitter } from 'node:events';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ResourceLimits } from 'node:worker_threads';
import type { VmExit, VmHandleEvents } from '../vm/vm-handle.js';
import { RUN_STATE_BOOTING, RUN_STATE_EXITED, type CommandResult, type LiveCounters, type MachineDeviceStats, type RateLimits, type SnapshotResult, type VmCommand, type VmConfig } from '../vm/protocol.js';
import type { NicSpec } from '../net/nic-spec.js';
import type { NicStats } from '../net/nic-host.js';
import type { HartReport } from '../vm/hart-stats-block.js';
import type { NicLimits } from '../devices/virtio/net.js';
import type { VmRunner } from './vm-runner.js';
import type { FromVmProcess, ToVmProcess } from './vm-process-protocol.js';
import { NO_DEVICE_STATS } from '../vm/device-stats-block.js';

/** The least time a VM process gets to start and set up its NICs. */
const LAUNCH_TIMEOUT_MS = 30_000;

export interface ProcessVmOptions {
  /** The VM's name (NIC labels and default MACs, as for a thread VM). */
  name: string;
  /** The VM's NICs; their backends are created in the child. */
  nics: NicSpec[];
  /** Heap limits of the worker thread inside the child. */
  resourceLimits?: ResourceLimits;
  /** How long the child's VmHandle waits for its worker on stop (ms); the child itself gets 2 s more. */
  stopTimeoutMs?: number;
  /** A child that sends nothing for this long is killed as hung (ms). */
  reportTimeoutMs: number;
}

type State = 'new' | 'launching' | 'ready' | 'running' | 'stopping' | 'exited';

const STDERR_TAIL = 2048;

// Every child still alive, killed if the daemon's process exits without
// stopping them (an uncaught error, process.exit). A daemon killed outright
// cannot run this; its children then see their IPC channel close and leave.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
  });
}

// CPU time of VM processes (they are not in the daemon's process.cpuUsage()):
// ended ones, plus the last report of each live one.
let endedCpuUs = 0;
const liveCpuUs = new Map<ProcessVmHandle, number>();
/** Host CPU time used by all VM processes of this daemon so far (µs). */
export function vmProcessesCpuUs(): number {
  let sum = endedCpuUs;
  for (const v of liveCpuUs.values()) sum += v;
  return sum;
}

export class ProcessVmHandle extends EventEmitter<VmHandleEvents> implements VmRunner {
  readonly exited: Promise<VmExit>;
  private state: State = 'new';
  private child: ChildProcess | null = null;
  private resolveExit!: (r: VmExit) => void;
  private lastLive: LiveCounters = { instret: 0n, jitInstret: 0n, credit: -1n, heartbeatMs: 0, busyUs: 0, state: RUN_STATE_BOOTING, ramResidentBytes: -1, boots: 0, consoleBytes: 0 };
  private lastNics: NicStats[] = [];
  private lastDevices: MachineDeviceStats = NO_DEVICE_STATS;
  private lastHarts: HartReport[] = [];
  private lastMessageAt = 0;
  /** The child's own account of how the VM ended, sent just before it leaves. */
  private reportedExit: VmExit | null = null;
  /** Set when the daemon ends the child itself; wins over how the process died. */
  private endedBy: VmExit | null = null;
  private stderrTail = '';
  private reportedPendingInput = 0;
  private inputSinceReport = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private nextCommandId = 1;
  private readonly inFlight = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly stopTimeoutMs: number;

  constructor(readonly config: VmConfig, private readonly opts: ProcessVmOptions) {
    super();
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 2000;
    this.exited = new Promise<VmExit>((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get running(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  /** The child's process id while it lives. */
  get pid(): number | null {
    return this.state === 'exited' ? null : this.child?.pid ?? null;
  }

  /**
   * Fork the child and have it set up the NICs. Resolves when the VM is
   * ready to boot; rejects with the reason if it is not (a host port in use,
   * a missing TAP device, a child that could not start), the child then gone.
   */
  launch(): Promise<void> {
    if (this.state !== 'new') throw new Error('ProcessVmHandle.launch() called twice');
    this.state = 'launching';
    const entry = fileURLToPath(new URL('./vm-process.js', import.meta.url));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // A child that never answers (stuck before or during NIC setup) must not hold the start request forever.
      // Starting Node.js takes seconds on a crowded host: a short hang timeout
      // (it bounds silence while running) must not fail a child still starting.
      const launchMs = Math.max(this.opts.reportTimeoutMs, LAUNCH_TIMEOUT_MS);
      const launchTimer = setTimeout(() => {
        this.endedBy = { code: 1, reason: `VM process did not get ready within ${Math.round(launchMs / 1000)} s` };
        this.child?.kill('SIGKILL');
      }, launchMs);
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(launchTimer);
        if (err) reject(err);
        else resolve();
      };
      let child: ChildProcess;
      try {
        // execArgv: [] so the daemon's own node flags (a test runner's, say) do not apply to the VM.
        child = fork(entry, [], { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      } catch (e) {
        this.finish({ code: 1, reason: `cannot start the VM process: ${errorText(e)}` });
        settle(new Error(`cannot start the VM process: ${errorText(e)}`));
        return;
      }
      this.child = child;
      track(child);
      this.lastMessageAt = Date.now();
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (s: string) => {
        this.stderrTail = (this.stderrTail + s).slice(-STDERR_TAIL);
      });
      child.on('error', (e) => {
        // Spawning failed, or a signal could not be sent; 'close' follows if it had started.
        if (child.pid === undefined) {
          this.finish({ code: 1, reason: `cannot start the VM process: ${e.message}` });
          settle(new Error(`cannot start the VM process: ${e.message}`));
        }
      });
      child.on('message', (m: FromVmProcess) => {
        this.lastMessageAt = Date.now();
        if (m.type === 'ready') {
          if (this.state === 'launching') this.state = 'ready';
          settle(null);
        } else if (m.type === 'setupFailed') {
          this.endedBy = { code: 1, reason: m.message };
          settle(new Error(m.message));
        } else {
          this.onMessage(m);
        }
      });
      child.on('close', (code, signal) => {
        const r = this.howItEnded(code, signal);
        settle(new Error(r.reason));
        this.finish(r);
      });
      this.send({ type: 'setup', name: this.opts.name, config: this.config, nics: this.opts.nics, resourceLimits: this.opts.resourceLimits, stopTimeoutMs: this.stopTimeoutMs });
    });
  }

  /** Boot the guest (after launch()). */
  start(): void {
    if (this.state !== 'ready') throw new Error(`ProcessVmHandle.start() in state ${this.state}`);
    this.state = 'running';
    this.lastMessageAt = Date.now();
    this.send({ type: 'boot' });
    const timeout = this.opts.reportTimeoutMs;
    this.watchdog = setInterval(() => {
      // Checked after the loop's I/O phase, so reports that queued up while the daemon itself was busy count.
      setImmediate(() => {
        const quiet = Date.now() - this.lastMessageAt;
        if (quiet > timeout && this.running) void this.kill(`VM process stopped reporting for ${Math.round(quiet / 1000)} s`);
      });
    }, Math.max(50, Math.min(1000, timeout / 4)));
    this.watchdog.unref();
  }

  stop(): Promise<VmExit> {
    if (this.state === 'new') {
      this.finish({ code: 0, reason: 'stopped before start' });
    } else if (this.state === 'launching' || this.state === 'ready') {
      this.endedBy = { code: 0, reason: 'stopped before start' };
      this.child?.kill('SIGKILL');
    } else if (this.state === 'running') {
      this.state = 'stopping';
      this.send({ type: 'stop' });
      // The child terminates its worker after stopTimeoutMs; if it is still there well after, end it.
      this.killTimer = setTimeout(() => {
        this.endedBy = { code: 0, reason: 'stopped' };
        this.child?.kill('SIGKILL');
      }, this.stopTimeoutMs + 2000);
    }
    return this.exited;
  }

  /** End the VM's process now, without asking; `exit` follows with `reason`. */
  kill(reason: string): Promise<VmExit> {
    if (this.state === 'exited') return this.exited;
    this.endedBy ??= { code: 1, reason };
    if (this.child) this.child.kill('SIGKILL');
    else this.finish(this.endedBy);
    return this.exited;
  }

  pause(): void {
    if (this.running) this.send({ type: 'pause', paused: true });
  }

  resume(): void {
    if (this.running) this.send({ type: 'pause', paused: false });
  }

  setCredit(instret: bigint): void {
    if (!this.running) return;
    this.send({ type: 'credit', credit: instret, basis: this.lastLive.instret });
  }

  /** The counters of the child's last report (at most one report interval old). */
  live(): LiveCounters {
    return this.lastLive;
  }

  /** NIC counters of the child's last report. */
  nicStats(): NicStats[] {
    return this.lastNics;
  }

  sendInput(bytes: Uint8Array): void {
    if (!this.running || bytes.length === 0) return;
    this.inputSinceReport += bytes.length;
    this.send({ type: 'input', data: bytes.slice() });
  }

  /**
   * The child's queued input as of its last report, plus everything sent
   * since (some of which it may already have taken: an over-estimate, which
   * is the safe side for a bound).
   */
  get pendingInputBytes(): number {
    return this.reportedPendingInput + this.inputSinceReport;
  }

  requestStats(): void {
    if (this.running) this.send({ type: 'requestStats' });
  }

  command<C extends VmCommand>(cmd: C): Promise<CommandResult<C>> {
    if (!this.running) return Promise.reject(new Error('the VM is not running'));
    const id = this.nextCommandId++;
    const p = new Promise<CommandResult<C>>((resolve, reject) => {
      this.inFlight.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.send({ type: 'command', id, command: cmd });
    return p;
  }

  /** Device counters of the child's last report. */
  sharedDeviceStats(): MachineDeviceStats {
    return this.lastDevices;
  }

  /** Hart figures of the child's last report. */
  hartStats(): HartReport[] {
    return this.lastHarts;
  }

  snapshot(dir: string, overlays?: (string | null)[]): Promise<SnapshotResult> {
    return this.command(overlays ? { type: 'snapshot', dir, overlays } : { type: 'snapshot', dir });
  }

  deviceStats(refresh = false): Promise<MachineDeviceStats> {
    return this.command({ type: 'deviceStats', refresh });
  }

  async setDiskLimits(index: number, limits: RateLimits): Promise<void> {
    await this.command({ type: 'setDiskLimits', disk: index, limits });
  }

  async setNicLimits(index: number, limits: NicLimits): Promise<void> {
    await this.command({ type: 'setNicLimits', nic: index, limits });
  }

  async setBalloonTarget(mib: number): Promise<void> {
    await this.command({ type: 'setBalloonTarget', mib });
  }

  private send(msg: ToVmProcess): void {
    const c = this.child;
    // With a callback, a closed channel is reported here rather than as an 'error' event; 'close' handles the end.
    if (c?.connected) c.send(msg, () => {});
  }

  private onMessage(m: FromVmProcess): void {
    if (this.state === 'exited') return;
    switch (m.type) {
      case 'report':
        this.lastLive = m.live;
        this.lastNics = m.nics;
        this.lastDevices = m.devices;
        this.lastHarts = m.harts;
        this.reportedPendingInput = m.pendingInput;
        this.inputSinceReport = 0;
        liveCpuUs.set(this, m.cpuUs);
        break;
      case 'output':
        this.emit('output', m.data);
        break;
      case 'warning':
        this.emit('warning', m.message);
        break;
      case 'stats':
        this.emit('stats', m.text);
        break;
      case 'reply': {
        const w = this.inFlight.get(m.reply.id);
        if (!w) break;
        this.inFlight.delete(m.reply.id);
        if (m.reply.ok) w.resolve(m.reply.result);
        else w.reject(new Error(m.reply.error));
        break;
      }
      case 'exit':
        this.reportedExit = { code: m.code, reason: m.reason };
        // The child leaves by itself once this is written; make sure it does.
        this.killTimer ??= setTimeout(() => this.child?.kill('SIGKILL'), 2000);
        break;
      default:
        this.emit('warning', `unknown message from the VM process: ${JSON.stringify(m)}`);
    }
  }

  private howItEnded(code: number | null, signal: NodeJS.Signals | null): VmExit {
    if (this.endedBy) return this.endedBy;
    if (this.reportedExit) return this.reportedExit;
    if (this.state === 'stopping') return { code: 0, reason: 'stopped' };
    if (signal) return { code: 1, reason: `VM process killed by ${signal}` };
    const last = this.stderrTail.trim().split('\n').filter((l) => l.trim() !== '').pop();
    return { code: 1, reason: `VM process exited unexpectedly (code ${code})${last ? `: ${last.trim()}` : ''}` };
  }

  private finish(result: VmExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.killTimer) clearTimeout(this.killTimer);
    this.watchdog = this.killTimer = null;
    if (this.child) liveChildren.delete(this.child);
    endedCpuUs += liveCpuUs.get(this) ?? 0;
    liveCpuUs.delete(this);
    this.lastLive = { ...this.lastLive, state: RUN_STATE_EXITED };
    for (const w of this.inFlight.values()) w.reject(new Error(`the VM ended: ${result.reason}`));
    this.inFlight.clear();
    this.resolveExit(result);
    this.emit('exit', result);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
