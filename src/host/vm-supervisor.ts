// One VM as the daemon sees it: its definition, its state, its worker while
// it runs (VmHandle, or ProcessVmHandle when isolation is "process"), its
// console (log file, recent output, attached clients), and the watch that
// turns a crash, a hang or a guest kernel panic into `failed` with a reason,
// followed by the restart policy. A panic is what the worker reports from the
// kernel's panic() breakpoint, never text on the console, which any guest
// program can print.

import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { systemMapCandidates } from '../machine/kernel-symbols.js';
import { VmHandle, restoredText, type VmExit } from '../vm/vm-handle.js';
import { ProcessVmHandle } from './process-vm-handle.js';
import type { WarmWorkers } from '../vm/warm-worker.js';
import type { ResourceLimits } from 'node:worker_threads';
import type { VmRunner } from './vm-runner.js';
import { RUN_STATE_PAUSED, runsHartThreads, type LiveCounters, type VmConfig } from '../vm/protocol.js';
import { readSnapshotCached } from '../vm/snapshot.js';
import { cloneDisks } from '../vm/clone-disks.js';
import { disksWithOverlays } from '../vm/disk-freeze.js';
import type { CreateVmRequest, VmDefinition, VmState } from './types.js';
import { DEFAULT_HART_THREADS, DEFAULT_WEIGHT } from './schemas.js';
import { diskRateLimits, nicSpecs } from './nics.js';
import type { NetPolicy } from './net-policy.js';
import { NicThread } from '../net/nic-thread.js';
import { ByteRing } from './byte-ring.js';
import { ConsoleLog } from './console-log.js';
import { lockVmImages, planVmLocks, type PlannedLock, type VmLocks } from '../storage/vm-images.js';

/** Whether a VM of this definition asks for hart threads (unset: the default, on; docs/smp.md). */
function hartThreadsOf(c: CreateVmRequest): boolean {
  return c.hartThreads ?? DEFAULT_HART_THREADS;
}

/**
 * How many times longer than on an idle host a worker may go without reporting:
 * the load average per core (1 to 10). On a crowded host a worker thread can
 * wait tens of seconds for a core (twenty booting guests at load 28 saw a 31 s
 * gap); that is not a hang, and failing the VM for it would harm the guest.
 */
function hostLoadFactor(): number {
  return Math.min(10, Math.max(1, loadavg()[0] / availableParallelism()));
}

/**
 * hvc0 (virtio-console) carries the terminal size to the guest; earlycon
 * prints what the kernel says before hvc0 exists (an early panic included).
 */
export const DEFAULT_APPEND = 'console=hvc0 earlycon=sbi';
/** Guest instructions a booting VM has to show a sign of life in (about 13 times what the default guest needs). */
export const BOOT_WATCH_INSNS = 2_000_000_000;
/** Default time a graceful stop or reboot waits for the guest, in seconds. */
export const DEFAULT_SHUTDOWN_TIMEOUT_S = 30;
const RECENT_BYTES = 16 * 1024;

// Every VM runner a supervisor has started and not yet seen exit, whether or
// not its supervisor is still listed: a leak check for tests and metrics.
const liveRunners = new Set<VmRunner>();
/** VMs running (threads or processes) started by any supervisor in this process. */
export function liveRunnerCount(): number {
  return liveRunners.size;
}

export interface SupervisorOptions {
  wasmPath: string;
  logDir: string;
  /** Largest console log per VM before it is rotated (one older file is kept). */
  logMaxBytes: number;
  /** A running, unpaused VM whose worker has not reported for this long is killed. */
  hangTimeoutMs: number;
  /** Heap limits of each VM's worker thread. */
  workerMaxHeapMiB: number;
  /** The daemon's images directory: qcow2 backing files must stay inside it. */
  imagesDir: string;
  log: (msg: string) => void;
  /** The daemon's network policy, enforced by user NICs (net-policy.ts). */
  netPolicy?: NetPolicy;
  /** Runs a restart in the VM's turn among lifecycle operations (see Host.serialized). */
  serialize: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  /** Where snapshots live (STATE_DIR/snapshots). */
  snapshotsDir: string;
  /** Where clones keep their disk overlays (STATE_DIR/clones/NAME). */
  clonesDir: string;
  /** A worker started ahead of need that thread VMs take when it is ready (warm-worker.ts). */
  warm?: WarmWorkers;
}

/** Heap limits of a VM's worker thread: guest RAM is a wasm memory outside the JS heap, which only holds the emulator's objects. */
export function workerLimits(maxHeapMiB: number): ResourceLimits {
  return { maxOldGenerationSizeMb: maxHeapMiB, maxYoungGenerationSizeMb: 16 };
}

/** What the scheduler measured over its last window. */
export interface WindowStats {
  mips: number;
  cpuShare: number;
  instructionShare: number;
}

export interface SupervisorEvents {
  output: [data: Uint8Array];
  state: [state: VmState];
}

export class VmSupervisor extends EventEmitter<SupervisorEvents> {
  readonly name: string;
  config: CreateVmRequest;
  readonly createdAt: string;
  state: VmState;
  lastFailure: string | null = null;
  lastExit: string | null = null;
  restarts = 0;
  startedAt = 0;
  window: WindowStats = { mips: 0, cpuShare: 0, instructionShare: 0 };
  /** The running VM: a worker thread here (VmHandle) or its own process (ProcessVmHandle). */
  handle: VmRunner | null = null;
  /** The files this VM locks (src/storage/vm-images.ts) from the start of start() until it has ended, else null. */
  lockedFiles: PlannedLock[] | null = null;
  /** The locks themselves when the VM runs in this process (a process VM holds its own). */
  private imageLocks: VmLocks | null = null;
  /** Console WebSocket clients attached now (bounded by the daemon's --max-console-clients). */
  consoleClients = 0;
  /** Set when the VM is deleted: a restart queued before that must not run. */
  removed = false;
  /** The size of the terminal that last attached to the console (cols x rows), given to the guest's hvc0. */
  consoleSize: { cols: number; rows: number } | null = null;
  /** A graceful stop or reboot is waiting for the guest (a kill does not wait for it). */
  shuttingDown = false;

  private readonly opts: SupervisorOptions;
  /** The last console bytes, replayed to a console client when it attaches. */
  private readonly recent = new ByteRing(RECENT_BYTES);
  /** Written asynchronously through a bounded queue (console-log.ts). */
  readonly consoleLog: ConsoleLog;
  private stopRequested = false;
  private failurePending: string | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private retriesUsed = 0;

  constructor(def: VmDefinition, opts: SupervisorOptions, initialState: VmState) {
    super();
    this.name = def.config.name;
    this.config = def.config;
    this.createdAt = def.createdAt;
    this.state = initialState;
    this.opts = opts;
    this.consoleLog = new ConsoleLog(join(opts.logDir, `${this.name}.log`), opts.logMaxBytes, (m) => opts.log(`${this.name}: ${m}`));
  }

  get definition(): VmDefinition {
    return { version: 1, config: this.config, createdAt: this.createdAt };
  }

  get weight(): number {
    return this.config.cpu?.weight ?? DEFAULT_WEIGHT;
  }

  /** Host threads the VM's harts run on (scheduler): one each with hart threads. */
  get threads(): number {
    // What the running VM was started with (a snapshot's machine may be deterministic); else the definition's.
    const v = this.startedConfig ?? { hartThreads: hartThreadsOf(this.config), cpus: this.config.cpus ?? this.config.vcpus ?? 1, deterministic: this.config.deterministic === true, gdb: this.config.gdb === true ? {} : undefined };
    return runsHartThreads(v) ? v.cpus ?? 1 : 1;
  }

  get cap(): number | undefined {
    return this.config.cpu?.cap;
  }

  get isolation(): 'thread' | 'process' {
    return this.config.isolation ?? 'thread';
  }

  /** The OS process of a process-isolated VM while it runs, else null (a thread VM shares the daemon's). */
  get pid(): number | null {
    return this.handle instanceof ProcessVmHandle ? this.handle.pid : null;
  }

  get logPath(): string {
    return join(this.opts.logDir, `${this.name}.log`);
  }

  /** Live counters of the running worker, or null. */
  live(): LiveCounters | null {
    return this.handle?.live() ?? null;
  }

  /** The worker's VmConfig for this definition (a migration's destination builds its VM from it). */
  workerConfig(): VmConfig {
    return this.vmConfig();
  }

  /** The VmConfig the running VM was started with (its image locks follow it). */
  private startedConfig: VmConfig | null = null;

  /** The worker's VmConfig for this definition. */
  private vmConfig(): VmConfig {
    const c = this.config;
    if (c.snapshot !== undefined) {
      // Every start restores the snapshot: the machine is the snapshot's, as it was saved.
      const dir = join(this.opts.snapshotsDir, c.snapshot);
      const snap = readSnapshotCached(dir);
      // How the harts run is this definition's choice, not the snapshot's (its state is the same either way).
      const restored: VmConfig = {
        ...snap.config, hartThreads: hartThreadsOf(c), wasmPath: this.opts.wasmPath, restore: dir, debug: c.debug, name: this.name, gdb: c.gdb === true ? {} : undefined,
        consoleSize: this.consoleSize ?? undefined,
      };
      if (c.clone !== true) return restored;
      // A clone only reads the snapshot's disks (its writes go to overlays that
      // start() makes): planned as read-only here, so the locks check out alike.
      return { ...restored, clone: true, disks: restored.disks?.map((d) => ({ ...d, readOnly: true })) };
    }
    let append = c.append ?? DEFAULT_APPEND;
    if (c.rootDisk && !/(^|\s)root=/.test(append)) append = `${append} root=/dev/vda rw`;
    return {
      kernel: c.kernel,
      initrd: c.initrd,
      append,
      memMiB: c.memory,
      deterministic: c.deterministic === true,
      cpus: c.cpus ?? c.vcpus ?? 1,
      hartThreads: hartThreadsOf(c),
      wasmPath: this.opts.wasmPath,
      jit: c.jit !== false,
      disks: (c.disks ?? []).map((d) => ({
        path: d.path, format: d.format, readOnly: d.readonly === true, serial: d.serial, limits: diskRateLimits(d.limits), backingRoot: this.opts.imagesDir,
      })),
      balloon: c.balloon === true ? true : undefined,
      debug: c.debug,
      systemMap: c.systemMap ?? systemMapCandidates(c.kernel).find((p) => existsSync(p)),
      stallTimeoutMs: c.stallTimeout === undefined ? undefined : c.stallTimeout * 1000,
      gdb: c.gdb === true ? {} : undefined,
      // On by default for guests that boot an operating system (an initrd or a disk);
      // bare test programs that spin without interrupts on purpose are left alone.
      bootWatchInsns: c.bootWatch ?? (c.initrd !== undefined || (c.disks?.length ?? 0) > 0) ? BOOT_WATCH_INSNS : undefined,
      consoleSize: this.consoleSize ?? undefined,
    };
  }

  /** Where this VM keeps its clone overlays. */
  get cloneDir(): string {
    return join(this.opts.clonesDir, this.name);
  }

  /**
   * A clone's config with fresh overlays over the snapshot's writable disks:
   * every start restores the snapshot, so the disks start from it again too.
   */
  private async cloneConfig(): Promise<VmConfig> {
    const dir = join(this.opts.snapshotsDir, this.config.snapshot!);
    const snap = readSnapshotCached(dir);
    const config: VmConfig = { ...snap.config, wasmPath: this.opts.wasmPath, restore: dir, debug: this.config.debug, name: this.name, clone: true, gdb: this.config.gdb === true ? {} : undefined, consoleSize: this.consoleSize ?? undefined };
    rmSync(this.cloneDir, { recursive: true, force: true });
    if (!snap.config.disks?.some((d) => d.readOnly !== true)) return config;
    const made = await cloneDisks(snap.config.disks, this.cloneDir);
    // Each overlay keeps the snapshot disk's backingRoot: its chain stays confined as the original's was.
    return { ...config, disks: made.disks };
  }

  /** True while start() sets up the NICs (and, for a process VM, its process). */
  starting = false;
  /** stop() or kill() came while starting: the VM must not boot (the daemon may be closing). */
  private startAborted = false;

  /** Start the VM (after its NIC backends; in its own process when isolation is "process"). The caller checks that the VM is not running. */
  async start(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.stopRequested = false;
    this.failurePending = null;
    const specs = nicSpecs(this.config, this.opts.netPolicy);
    if (!specs.ok) throw new Error(specs.error);
    const resourceLimits = workerLimits(this.opts.workerMaxHeapMiB);
    const config = this.config.clone === true ? await this.cloneConfig() : this.vmConfig();
    this.startedConfig = config;
    if (this.isolation === 'process') {
      this.lockedFiles = planVmLocks(config); // the VM's process takes the locks themselves
    } else {
      this.imageLocks = lockVmImages(config);
      this.lockedFiles = this.imageLocks.files;
    }
    this.starting = true;
    this.startAborted = false;
    let handle: VmRunner;
    try {
      if (this.isolation === 'process') {
        // The NIC backends start in the VM's process, next to the worker that shares their rings.
        const p = new ProcessVmHandle(config, { name: this.name, nics: specs.specs, resourceLimits, reportTimeoutMs: this.opts.hangTimeoutMs });
        await p.launch();
        handle = p;
      } else {
        // The NIC backends run on an I/O thread of this VM, off the daemon's event loop (nic-thread.ts).
        const nics = specs.specs.length ? await NicThread.open(specs.specs, this.name) : [];
        handle = new VmHandle(config, { resourceLimits, nics, warm: this.opts.warm });
      }
    } catch (e) {
      this.releaseImages();
      throw e;
    } finally {
      this.starting = false;
    }
    if (this.startAborted) {
      await handle.stop(); // never started: this only releases its NICs (and process)
      this.releaseImages();
      throw new Error('stopped while starting');
    }
    this.adopt(handle);
  }

  /** Make a started worker this supervisor's running VM. */
  private adopt(handle: VmRunner): void {
    this.openLog();
    this.handle = handle;
    liveRunners.add(handle);
    void handle.exited.then(() => liveRunners.delete(handle));
    handle.on('output', (d) => this.onOutput(d));
    handle.on('warning', (m) => this.opts.log(`${this.name}: ${m}`));
    handle.on('restored', (r) => this.opts.log(`${this.name}: ${restoredText(r)}`));
    handle.on('exit', (r) => {
      this.releaseImages(); // before a restart takes them again
      this.onExit(handle, r);
    });
    this.startedAt = Date.now();
    this.setState('running');
    if (!handle.running) handle.start();
  }

  /**
   * Live migration destination: a worker that builds this VM from incoming
   * memory and device state (VmConfig.incoming), not yet this supervisor's
   * running VM. Its NICs are opened here.
   */
  async startIncoming(diskSizes: number[]): Promise<VmHandle> {
    const specs = nicSpecs(this.config, this.opts.netPolicy);
    if (!specs.ok) throw new Error(specs.error);
    const config = { ...this.vmConfig(), incoming: { diskSizes } };
    this.startedConfig = config;
    const nics = specs.specs.length ? await NicThread.open(specs.specs, this.name) : [];
    const handle = new VmHandle(config, { resourceLimits: workerLimits(this.opts.workerMaxHeapMiB), nics, warm: this.opts.warm });
    handle.start();
    return handle;
  }

  /** Take this VM's image locks (the destination at COMMIT); throws if another holder has them. */
  lockForIncoming(): void {
    this.imageLocks = lockVmImages(this.startedConfig ?? this.vmConfig());
    this.lockedFiles = this.imageLocks.files;
  }

  /** The migrated VM runs: it is this supervisor's from now on. */
  adoptIncoming(handle: VmHandle): void {
    this.stopRequested = false;
    this.adopt(handle);
  }

  /** Source of a migration: the worker closed the images; let go of their locks for the destination. */
  releaseImagesForMigration(): void {
    this.imageLocks?.release();
    this.imageLocks = null;
  }

  /** The migration failed after releaseImagesForMigration(): the VM goes on here, with its locks. */
  retakeImagesAfterMigration(): void {
    if (this.imageLocks || !this.startedConfig) return;
    this.imageLocks = lockVmImages(this.startedConfig);
    this.lockedFiles = this.imageLocks.files;
  }

  /** The VM now runs elsewhere: end the worker here without it counting as a failure. */
  async endMigratedAway(): Promise<void> {
    this.cancelRestart();
    const h = this.handle;
    if (!h) return;
    this.stopRequested = true;
    await h.stop();
  }

  /**
   * A snapshot froze disks: the definition names their overlays from now on, and
   * the locks follow (each overlay exclusive, the frozen image under it shared,
   * so clones of the snapshot can read it while this VM runs).
   */
  adoptOverlays(overlays: { disk: number; path: string }[]): void {
    this.config = { ...this.config, disks: disksWithOverlays(this.config.disks ?? [], overlays) };
    if (this.startedConfig) this.startedConfig = { ...this.startedConfig, disks: this.vmConfig().disks };
    if (this.isolation === 'process') {
      if (this.lockedFiles) this.lockedFiles = planVmLocks(this.vmConfig()); // the VM's process relocks itself
      return;
    }
    if (!this.imageLocks) return;
    this.imageLocks.release();
    this.imageLocks = null;
    try {
      this.imageLocks = lockVmImages(this.vmConfig());
      this.lockedFiles = this.imageLocks.files;
    } catch (e) {
      this.lockedFiles = null;
      this.opts.log(`${this.name}: relocking the disks after the snapshot failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The locks this VM would take now (checks its disks' backing chains; throws DiskError). */
  plannedLocks(): PlannedLock[] {
    return planVmLocks(this.vmConfig());
  }

  private releaseImages(): void {
    this.imageLocks?.release();
    this.imageLocks = null;
    this.lockedFiles = null;
  }

  pause(): void {
    this.handle?.pause();
    this.setState('paused');
  }

  resume(): void {
    this.handle?.resume();
    this.setState('running');
  }

  /** Ask the guest's worker to stop (it is terminated after a timeout). */
  async stop(): Promise<void> {
    this.cancelRestart();
    if (this.starting) this.startAborted = true;
    const h = this.handle;
    if (!h) return;
    this.stopRequested = true;
    await h.stop();
  }

  /**
   * Graceful stop: press the power button and give the guest `timeoutMs` to
   * power off, then stop it as stop() does. A paused VM, or a guest without a
   * driver for its buttons, is stopped at once. Says which way it ended.
   */
  async shutdown(timeoutMs: number): Promise<{ graceful: boolean; why?: string }> {
    this.cancelRestart();
    if (this.starting) this.startAborted = true;
    const h = this.handle;
    if (!h) return { graceful: false, why: 'not running' };
    this.stopRequested = true;
    const why = await this.pressAndWait(h, 'power', timeoutMs, () => h.exited.then(() => true));
    if (!why) return { graceful: true };
    this.opts.log(`${this.name}: stopping without the guest: ${why}`);
    await h.stop();
    return { graceful: false, why };
  }

  /**
   * Graceful reboot: press the restart key and give the guest `timeoutMs` to
   * reboot (it resets the machine, which starts again from its images); else
   * reset the machine at once, as a reset button does.
   */
  async reboot(timeoutMs: number): Promise<{ graceful: boolean; why?: string }> {
    const h = this.handle;
    if (!h) return { graceful: false, why: 'not running' };
    const boots = h.live().boots;
    const rebooted = () => h.live().boots > boots;
    const why = await this.pressAndWait(h, 'restart', timeoutMs, async () => {
      while (!rebooted() && h.running) await new Promise((r) => setTimeout(r, 50));
      return true;
    });
    if (!why) return { graceful: true };
    if (!h.running) return { graceful: false, why: 'the VM ended instead' };
    this.opts.log(`${this.name}: resetting without the guest: ${why}`);
    try {
      await h.command({ type: 'reset' });
    } catch (e) {
      if (h.running) throw e; // the VM ended meanwhile: nothing left to reset
    }
    return { graceful: false, why };
  }

  /** Press `button` and wait up to `timeoutMs` for `done`; null when done, else why not. */
  private async pressAndWait(h: VmRunner, button: 'power' | 'restart', timeoutMs: number, done: () => Promise<boolean>): Promise<string | null> {
    if (timeoutMs <= 0) return 'no time given to the guest';
    if (this.state === 'paused') return 'the VM is paused';
    this.shuttingDown = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await h.command({ type: 'pressButton', button });
      const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
      const ok = await Promise.race([done(), timeout, h.exited.then(() => true)]);
      return ok ? null : `the guest did not ${button === 'power' ? 'power off' : 'reboot'} within ${Math.round(timeoutMs / 1000)} s`;
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    } finally {
      clearTimeout(timer);
      this.shuttingDown = false;
    }
  }

  /** The terminal attached to the console is `cols` x `rows`: tell the guest (hvc0), now and at each start. */
  setConsoleSize(cols: number, rows: number): void {
    this.consoleSize = { cols, rows };
    const h = this.handle;
    if (h?.running) {
      h.command({ type: 'consoleSize', cols, rows }).catch((e: unknown) => this.opts.log(`${this.name}: console size: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  /** Terminate the worker at once. */
  async kill(): Promise<void> {
    this.cancelRestart();
    if (this.starting) this.startAborted = true;
    const h = this.handle;
    if (!h) return;
    this.stopRequested = true;
    await h.kill('killed by the host');
  }

  cancelRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  /** Mark the VM failed and end its worker (a worker that stopped reporting). */
  fail(reason: string): void {
    const h = this.handle;
    if (!h || this.failurePending) return;
    this.failurePending = reason;
    void h.kill(reason);
  }

  /** Called by the daemon's watchdog tick: a worker that stopped reporting is hung. */
  checkHeartbeat(now: number): void {
    const h = this.handle;
    if (!h || this.state !== 'running') return;
    const live = h.live();
    if (live.state === RUN_STATE_PAUSED) return;
    const last = Math.max(live.heartbeatMs, this.startedAt);
    if (now - last > this.opts.hangTimeoutMs * hostLoadFactor()) {
      this.fail(`hung: no progress reported for ${Math.round((now - last) / 1000)} s`);
    }
  }

  setCredit(instret: bigint): void {
    this.handle?.setCredit(instret);
  }

  sendInput(bytes: Uint8Array): void {
    this.handle?.sendInput(bytes);
  }

  /** Console input accepted for the guest but not yet taken by it. */
  pendingInputBytes(): number {
    return this.handle?.pendingInputBytes ?? 0;
  }

  /** The last bytes of console output (sent to a console client when it attaches). */
  recentOutput(): Buffer {
    return this.recent.snapshot();
  }

  /** The console log: the rotated older part, then the current file. */
  readLog(): Buffer {
    const parts: Buffer[] = [];
    for (const p of [`${this.logPath}.1`, this.logPath]) {
      if (existsSync(p)) parts.push(readFileSync(p));
    }
    return Buffer.concat(parts);
  }

  removeLogs(): void {
    const rm = () => {
      rmSync(this.logPath, { force: true });
      rmSync(`${this.logPath}.1`, { force: true });
    };
    rm();
    // A write already in flight may recreate the file: remove it again once that write is done.
    const inFlight = this.consoleLog.busy;
    void this.consoleLog.discard().then(() => inFlight && rm());
  }

  private openLog(): void {
    this.consoleLog.open();
  }

  private closeLog(): void {
    void this.consoleLog.close();
  }

  private onOutput(data: Uint8Array): void {
    this.consoleLog.write(data);
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.recent.push(data);
    this.emit('output', data);
  }

  private onExit(handle: VmRunner, r: VmExit): void {
    if (this.handle !== handle) return;
    this.handle = null;
    this.window = { mips: 0, cpuShare: 0, instructionShare: 0 };
    const failure = this.failurePending ?? (this.stopRequested ? null : r.code !== 0 || /worker|emulator|resource|VM process/i.test(r.reason) ? r.reason : null);
    // The log of a failed VM says why, even when the guest printed nothing (a hang, a crash of the worker).
    if (failure) this.consoleLog.write(new TextEncoder().encode(`\r\n[tsvisor] ${this.name} failed: ${failure}\r\n`));
    this.closeLog();
    this.lastExit = failure ?? r.reason;
    if (failure) {
      this.lastFailure = failure;
      this.opts.log(`${this.name}: failed: ${failure}`);
      this.setState('failed');
    } else {
      this.setState('stopped');
    }
    this.maybeRestart(failure !== null);
  }

  private maybeRestart(failed: boolean): void {
    const policy = this.config.restart?.policy ?? 'no';
    if (this.stopRequested || policy === 'no') return;
    if (policy === 'on-failure' && !failed) return;
    const max = this.config.restart?.maxRetries ?? (policy === 'on-failure' ? 3 : Infinity);
    if (this.retriesUsed >= max) {
      this.opts.log(`${this.name}: not restarting: ${this.retriesUsed} restarts used (maxRetries ${max})`);
      return;
    }
    this.retriesUsed++;
    // Back off a little so a VM that fails at once does not spin the host.
    const delay = Math.min(10_000, 250 * 2 ** Math.min(this.retriesUsed - 1, 6));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      // In the VM's turn, so a delete, stop or start in flight finishes first; then look again.
      this.opts
        .serialize(this.name, async () => {
          if (this.removed || this.stopRequested || this.handle || (this.state !== 'failed' && this.state !== 'stopped')) return;
          this.restarts++;
          this.opts.log(`${this.name}: restarting (policy ${policy}, restart ${this.restarts})`);
          await this.start();
        })
        .catch((e: unknown) => {
          // Deleted meanwhile, or the daemon is shutting down (503): nothing failed.
          if (this.removed || (e as { status?: number }).status === 503) return;
          this.lastFailure = `restart failed: ${e instanceof Error ? e.message : String(e)}`;
          this.setState('failed');
        });
    }, delay);
  }

  /** Forget restart history (a user start). */
  resetRetries(): void {
    this.retriesUsed = 0;
  }

  private setState(s: VmState): void {
    this.state = s;
    this.emit('state', s);
  }
}
