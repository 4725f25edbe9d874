// The VMs of this host: definitions (kept on disk), the memory budget they are
// reserved against, their supervisors, the CPU scheduler and the hang
// watchdog. Routes call these methods; every method either does all of its
// work or throws an ApiError having changed nothing.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DefinitionStore, type KeptFile } from './store.js';
import { KeyedMutex } from './keyed-mutex.js';
import { hartsOfVm } from '../vm/hart-stats-block.js';
import { ApiError, checkCap, resolveImagePath, validateClone, validateCreate, validatePatch, type HostLimits } from './validate.js';
import { SnapshotCatalog } from './snapshot-catalog.js';
import { disksWithOverlays, overlayPathFor } from '../vm/disk-freeze.js';
import type { SnapshotResult } from '../vm/protocol.js';
import { readSnapshot } from '../vm/snapshot.js';
import { DEFAULT_SHUTDOWN_TIMEOUT_S, VmSupervisor, workerLimits, type SupervisorOptions } from './vm-supervisor.js';
import { WarmWorkers } from '../vm/warm-worker.js';
import { defaultWorkerUrl } from '../vm/vm-handle.js';
import { FairShareScheduler } from './scheduler.js';
import { RUN_STATE_BOOTING, RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, RUN_STATE_RUNNING, RUN_STATE_THROTTLED } from '../vm/protocol.js';
import type { CloneRequest, CreateVmRequest, VmDefinition, VmState } from './types.js';
import { diskRateLimits, nicRateLimits, nicSpecs } from './nics.js';
import { vmProcessesCpuUs } from './process-vm-handle.js';
import { checkNetPolicy, defaultNetPolicy, type NetPolicy } from './net-policy.js';
import { findLockConflict, fixDiskFormatsAtCreate, fixStoredDiskFormats } from './disks.js';
import { NO_DEVICE_STATS } from '../vm/device-stats-block.js';
import { HistoryRecorder } from './history.js';
import { EventLog } from './events.js';
import { listImages, type ImageEntry } from './images.js';

/** Files in the state directory: the graphs' samples and the events (JSON lines, bounded). */
export const HISTORY_FILE = 'history.jsonl';
export const EVENTS_FILE = 'events.jsonl';

export interface HostOptions {
  stateDir: string;
  imagesDir: string;
  /** Host CPU for VMs, in cores. */
  cpus: number;
  memoryBudgetMiB: number;
  wasmPath: string;
  debugFaults: boolean;
  hangTimeoutMs: number;
  schedulerPeriodMs: number;
  logMaxBytes: number;
  workerMaxHeapMiB: number;
  log: (msg: string) => void;
  /** What VMs' user NICs may reach and bind on the host; default: net-policy.ts. */
  netPolicy?: NetPolicy;
  /** Keep one VM worker thread started ahead of need (default true; see src/vm/warm-worker.ts). */
  warmWorker?: boolean;
  /** The graphs' history: sample interval (default 2 s) and points kept (default 1800: one hour). */
  historyIntervalMs?: number;
  historyPoints?: number;
}

const RUN_STATE_NAMES: Record<number, string> = {
  [RUN_STATE_BOOTING]: 'booting',
  [RUN_STATE_RUNNING]: 'running',
  [RUN_STATE_IDLE]: 'idle',
  [RUN_STATE_PAUSED]: 'paused',
  [RUN_STATE_THROTTLED]: 'throttled',
  [RUN_STATE_EXITED]: 'exited',
};

/** A stored definition that failed its checks at start: listed, never run, its name taken until deleted. */
export interface BrokenVm {
  name: string;
  reason: string;
  /** Files removed with it (kept-aside copies and their reasons). */
  files: string[];
  /** Its definition is still NAME.json (over the budget, or it could not be moved): DELETE removes that too. */
  inPlace?: boolean;
}

/** The memory a definition reserves, refusing anything that is not a sane whole MiB count. */
function reservation(config: { memory: unknown }): number {
  const m = config.memory;
  if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0) throw new Error(`memory: invalid reservation ${String(m)}`);
  return m;
}

/** A VM created from a snapshot: the snapshot must be readable and agree with the definition. */
function checkSnapshotSource(dir: string, config: CreateVmRequest, imagesDir: string): void {
  let snap;
  try {
    snap = readSnapshot(dir);
  } catch (e) {
    throw new ApiError(400, `snapshot: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (snap.config.memMiB !== config.memory) throw new ApiError(400, `memory: the snapshot has ${snap.config.memMiB} MiB`);
  if ((snap.config.deterministic === true) !== (config.deterministic === true)) throw new ApiError(400, 'deterministic: must match the snapshot');
  if ((snap.config.cpus ?? 1) !== (config.cpus ?? config.vcpus ?? 1)) throw new ApiError(400, `cpus: the snapshot has ${snap.config.cpus ?? 1}`);
  const saved = (snap.machine as { virtio?: { name?: string }[] }).virtio ?? [];
  if ((config.nics?.length ?? 0) !== saved.filter((v) => v.name?.startsWith('virtio-net')).length) {
    throw new ApiError(400, 'nics: as many as the snapshot has');
  }
  // The files the snapshot names must be where the daemon's own VMs may read them.
  const c = snap.config;
  resolveImagePath('snapshot kernel', c.kernel, imagesDir);
  if (c.initrd !== undefined) resolveImagePath('snapshot initrd', c.initrd, imagesDir);
  if (c.bios !== undefined) resolveImagePath('snapshot bios', c.bios, imagesDir);
  c.disks?.forEach((d, i) => resolveImagePath(`snapshot disks[${i}].path`, d.path, imagesDir));
}

export class Host {
  readonly vms = new Map<string, VmSupervisor>();
  readonly broken = new Map<string, BrokenVm>();
  /** One lifecycle operation at a time per VM name (create, start, stop, kill, restart, delete, patch, pause, resume). */
  private readonly ops = new KeyedMutex();
  private closing = false;
  readonly scheduler: FairShareScheduler;
  readonly startedAt = Date.now();
  private readonly store: DefinitionStore;
  private readonly supervisorOpts: SupervisorOptions;
  private watchdog: NodeJS.Timeout | null = null;
  /** Shared with the supervisors: the API port added by protectApiPort() reaches VMs started later. */
  readonly netPolicy: NetPolicy;
  readonly snapshots: SnapshotCatalog;
  /** Bounded per-VM and host history for the graphs (history.ts). */
  readonly history: HistoryRecorder;
  /** Lifecycle events and failures (events.ts). */
  readonly events: EventLog;
  /** VMs arriving by live migration: their names are taken and their memory reserved until they run or are dropped. */
  readonly incoming = new Map<string, number>();

  constructor(readonly opts: HostOptions) {
    this.netPolicy = { ...(opts.netPolicy ?? defaultNetPolicy()), protectedPorts: [...(opts.netPolicy?.protectedPorts ?? [])] };
    checkNetPolicy(this.netPolicy);
    this.store = new DefinitionStore(opts.stateDir);
    this.snapshots = new SnapshotCatalog(join(opts.stateDir, 'snapshots'), (snap) =>
      [...this.vms.values()].filter((vm) => vm.config.snapshot === snap).map((vm) => vm.name).sort(),
    );
    const logDir = join(opts.stateDir, 'logs');
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    this.supervisorOpts = {
      wasmPath: opts.wasmPath,
      logDir,
      logMaxBytes: opts.logMaxBytes,
      hangTimeoutMs: opts.hangTimeoutMs,
      workerMaxHeapMiB: opts.workerMaxHeapMiB,
      imagesDir: opts.imagesDir,
      log: opts.log,
      netPolicy: this.netPolicy,
      serialize: (name, fn) => this.serialized(name, fn),
      snapshotsDir: join(opts.stateDir, 'snapshots'),
      clonesDir: join(opts.stateDir, 'clones'),
      warm: opts.warmWorker === false ? undefined : new WarmWorkers(defaultWorkerUrl(), opts.wasmPath, workerLimits(opts.workerMaxHeapMiB)),
    };
    // Both kept in the state directory, so graphs and events outlive a restart of the daemon.
    this.history = new HistoryRecorder(() => this.vms.values(), {
      intervalMs: opts.historyIntervalMs, points: opts.historyPoints, file: join(opts.stateDir, HISTORY_FILE), log: opts.log,
    });
    this.events = new EventLog({ file: join(opts.stateDir, EVENTS_FILE), log: opts.log });
    this.scheduler = new FairShareScheduler(() => this.vms.values(), {
      cpus: opts.cpus,
      periodMs: opts.schedulerPeriodMs,
      // VMs in their own processes use CPU outside this one: count it too.
      cpuTimeUs: () => {
        const u = process.cpuUsage();
        return u.user + u.system + vmProcessesCpuUs();
      },
    });
  }

  get limits(): HostLimits {
    return { imagesDir: this.opts.imagesDir, cpus: this.opts.cpus, debugFaults: this.opts.debugFaults };
  }

  /**
   * Load stored definitions (listed as stopped) and start the scheduler and
   * watchdog. Each definition is checked like a create request (schema,
   * images directory); one that fails is moved aside and listed as broken.
   */
  open(): void {
    this.events.load();
    const { stored, kept } = this.store.readAll();
    for (const k of kept) this.broken.set(k.name, { name: k.name, reason: k.reason, files: k.files });
    for (const s of stored) {
      let def: VmDefinition;
      try {
        if ('error' in s) throw new Error(s.error);
        def = this.checkStored(s.name, s.json);
      } catch (e) {
        const reason = `stored definition rejected: ${e instanceof Error ? e.message : String(e)}`;
        this.opts.log(`${s.name}: ${reason}`);
        let k: KeptFile | null = null;
        try {
          k = this.store.keepAside(s.name, reason);
        } catch (err) {
          this.opts.log(`${s.name}: could not move ${s.file} aside: ${err instanceof Error ? err.message : String(err)}`);
        }
        this.events.add(s.name, 'broken', reason, 'error');
        const prev = this.broken.get(s.name);
        this.broken.set(s.name, { name: s.name, reason, files: [...(prev?.files ?? []), ...(k?.files ?? [])], inPlace: k === null });
        continue;
      }
      if (this.broken.has(def.config.name)) {
        this.opts.log(`${def.config.name}: not loaded: a kept-aside definition of this name must be deleted first`);
        continue;
      }
      if (this.reservedMiB() + reservation(def.config) > this.opts.memoryBudgetMiB) {
        // Valid, so left in place (a larger budget loads it again), but listed so its name is not reused.
        const reason = `its ${def.config.memory} MiB exceed what is left of the memory budget (${this.opts.memoryBudgetMiB} MiB)`;
        this.opts.log(`${def.config.name}: not loaded: ${reason}`);
        this.broken.set(def.config.name, { name: def.config.name, reason, files: [], inPlace: true });
        continue;
      }
      const fixed = fixStoredDiskFormats(def.config);
      if (fixed.length > 0) {
        this.store.save(def.config.name, def);
        for (const note of fixed) this.opts.log(`${def.config.name}: stored without a disk format: ${note}`);
      }
      this.vms.set(def.config.name, this.track(new VmSupervisor(def, this.supervisorOpts, 'stopped')));
    }
    this.history.load(new Set(this.vms.keys()));
    this.events.add(null, 'daemon', `daemon started: ${this.vms.size} VM${this.vms.size === 1 ? '' : 's'} loaded, ${this.broken.size} broken`);
    this.scheduler.start();
    this.history.start();
    this.watchdog = setInterval(() => {
      // After the loop's I/O phase: a process VM's reports that queued up while the daemon was busy are read first.
      setImmediate(() => {
        const now = Date.now();
        for (const vm of this.vms.values()) vm.checkHeartbeat(now);
      });
    }, Math.min(1000, this.opts.hangTimeoutMs / 4));
    this.watchdog.unref();
  }

  /** A stored definition, checked with the rules API input meets; returns it with paths resolved. */
  private checkStored(fileName: string, json: unknown): VmDefinition {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    const d = json as Record<string, unknown>;
    const extra = Object.keys(d).filter((k) => !['version', 'config', 'createdAt'].includes(k));
    if (extra.length > 0) throw new Error(`${extra[0]}: unknown field`);
    if (d.version !== 1) throw new Error('version: must be 1');
    if (typeof d.createdAt !== 'string' || d.createdAt.length > 64 || Number.isNaN(Date.parse(d.createdAt))) {
      throw new Error('createdAt: must be a date');
    }
    let config;
    try {
      config = validateCreate(d.config, this.limits);
    } catch (e) {
      // validateCreate names the field relative to the config object.
      throw new Error(`config.${e instanceof Error ? e.message : String(e)}`.replace(/^config\.body: /, 'config: '));
    }
    if (config.name !== fileName) throw new Error(`config.name: '${config.name}' does not match the file name`);
    const nics = nicSpecs(config);
    if (!nics.ok) throw new Error(`config.${nics.error}`);
    return { version: 1, config, createdAt: d.createdAt };
  }

  /** Stop every VM and the background timers; lifecycle requests still queued find the host closing. */
  async close(): Promise<void> {
    this.closing = true;
    this.scheduler.stop();
    this.history.stop();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    await Promise.all(
      [...this.vms.values()].map((vm) =>
        this.ops.run(vm.name, async () => {
          vm.cancelRestart();
          await vm.stop();
        }),
      ),
    );
    for (const vm of this.vms.values()) vm.cancelRestart();
    await this.supervisorOpts.warm?.close();
    this.events.add(null, 'daemon', 'daemon stopped');
    await Promise.all([this.history.close(), this.events.close()]);
  }

  /** The daemon's TCP API listens on this port: no guest may reach it, no VM may bind it. */
  protectApiPort(port: number): void {
    if (!this.netPolicy.protectedPorts.includes(port)) this.netPolicy.protectedPorts.push(port);
  }

  reservedMiB(): number {
    let sum = 0;
    for (const vm of this.vms.values()) sum += reservation(vm.config);
    for (const mib of this.incoming.values()) sum += mib;
    return sum;
  }

  /** Run one lifecycle operation on `name` after the ones already queued for it. */
  serialized<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    return this.ops.run(name, async () => {
      if (this.closing) throw new ApiError(503, 'the daemon is shutting down');
      return fn();
    });
  }

  get(name: string): VmSupervisor {
    const vm = this.vms.get(name);
    if (!vm) {
      const b = this.broken.get(name);
      if (b) throw new ApiError(409, `VM '${name}' is broken (${b.reason}); delete it to free its name`);
      throw new ApiError(404, `no VM named '${name}'`);
    }
    return vm;
  }

  /** Whether a VM or a broken entry of this name exists (GET and DELETE see both). */
  has(name: string): boolean {
    return this.vms.has(name) || this.broken.has(name);
  }

  describeBroken(b: BrokenVm): Record<string, unknown> {
    return { name: b.name, state: 'broken', reason: b.reason, config: null, notes: [] };
  }

  /** Every VM and broken entry, as the list route shows them. */
  list(): Record<string, unknown>[] {
    const out = [...this.vms.values()].map((vm) => this.describe(vm));
    for (const b of this.broken.values()) out.push(this.describeBroken(b));
    return out.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  }

  describeByName(name: string): Record<string, unknown> {
    const b = this.broken.get(name);
    return b ? this.describeBroken(b) : this.describe(this.get(name));
  }

  create(body: unknown): Promise<VmSupervisor> {
    const config = validateCreate(body, this.limits);
    return this.serialized(config.name, () => this.createChecked(config));
  }

  private createChecked(config: ReturnType<typeof validateCreate>): VmSupervisor {
    if (this.vms.has(config.name) || this.incoming.has(config.name)) throw new ApiError(409, `name: a VM named '${config.name}' already exists`);
    if (this.broken.has(config.name)) throw new ApiError(409, `name: '${config.name}' belongs to a broken VM; delete it first`);
    const free = this.opts.memoryBudgetMiB - this.reservedMiB();
    if (config.memory > free) {
      throw new ApiError(
        409,
        `memory: ${config.memory} MiB requested but only ${free} MiB of the host's memory budget (${this.opts.memoryBudgetMiB} MiB) is left`,
      );
    }
    if (config.gdb === true && config.isolation === 'process') throw new ApiError(400, 'gdb: the GDB stub needs isolation "thread"');
    const nics = nicSpecs(config, this.netPolicy);
    if (!nics.ok) throw new ApiError(nics.status, nics.error);
    fixDiskFormatsAtCreate(config.disks, this.opts.imagesDir);
    if (config.snapshot !== undefined) checkSnapshotSource(join(this.opts.stateDir, 'snapshots', config.snapshot), config, this.opts.imagesDir);
    const def: VmDefinition = { version: 1, config, createdAt: new Date().toISOString() };
    this.store.save(config.name, def); // throws before anything is registered
    const vm = this.track(new VmSupervisor(def, this.supervisorOpts, 'created'));
    this.vms.set(config.name, vm);
    this.events.add(config.name, 'created', config.snapshot !== undefined ? `created from snapshot ${config.snapshot}` : `created (${config.memory} MiB)`);
    return vm;
  }

  /**
   * Live migration destination: check an arriving VM's definition like a
   * create request (its files must be here, at the same paths), its name and
   * the memory budget, and reserve both. Returns a supervisor not yet listed.
   */
  reserveIncoming(definition: unknown): VmSupervisor {
    if (this.closing) throw new ApiError(503, 'the daemon is shutting down');
    const d = typeof definition === 'object' && definition !== null && !Array.isArray(definition) ? { ...(definition as Record<string, unknown>) } : definition;
    // A VM started from a snapshot boots its kernel on a later restart here: the snapshot stays on the source.
    if (typeof d === 'object' && d !== null) delete (d as Record<string, unknown>).snapshot;
    const config = validateCreate(d, this.limits);
    if ((config.isolation ?? 'thread') !== 'thread') throw new ApiError(400, 'isolation: only thread-isolated VMs can migrate so far');
    if (this.vms.has(config.name) || this.incoming.has(config.name) || this.broken.has(config.name)) {
      throw new ApiError(409, `name: a VM named '${config.name}' already exists on the destination`);
    }
    const free = this.opts.memoryBudgetMiB - this.reservedMiB();
    if (config.memory > free) {
      throw new ApiError(409, `memory: the VM needs ${config.memory} MiB but only ${free} MiB of the destination's memory budget (${this.opts.memoryBudgetMiB} MiB) is left`);
    }
    const nics = nicSpecs(config, this.netPolicy);
    if (!nics.ok) throw new ApiError(nics.status, nics.error);
    fixDiskFormatsAtCreate(config.disks, this.opts.imagesDir);
    this.incoming.set(config.name, config.memory);
    return new VmSupervisor({ version: 1, config, createdAt: new Date().toISOString() }, this.supervisorOpts, 'created');
  }

  /** The arriving VM was dropped: free its name and memory. */
  dropIncoming(name: string): void {
    this.incoming.delete(name);
  }

  /** The arriving VM runs here now: store its definition and list it. */
  /** Write an incoming VM's definition ahead (see DefinitionStore.stage); registerIncoming puts it in place. */
  stageIncoming(vm: VmSupervisor): string {
    return this.store.stage(vm.name, vm.definition);
  }

  dropStaged(staged: string): void {
    this.store.dropStaged(staged);
  }

  registerIncoming(vm: VmSupervisor, staged: string): void {
    this.store.commitStaged(vm.name, staged);
    this.vms.set(vm.name, this.track(vm));
    this.incoming.delete(vm.name);
    this.events.add(vm.name, 'migrated', 'arrived by live migration and runs');
  }

  /** The VM now runs at a migration's destination: end it here and forget its definition. */
  async forgetMigratedAway(vm: VmSupervisor, to: string): Promise<void> {
    await this.serialized(vm.name, async () => {
      this.events.add(vm.name, 'migrated', `migrated to ${to}: it runs there now`);
      // Marked first: ending the copy that left is no 'stopped' event (the VM did not stop).
      vm.removed = true;
      await vm.endMigratedAway();
      this.store.remove(vm.name);
      // The console log stays: the output up to the move is only here (a VM that comes back appends to it).
      if (this.vms.get(vm.name) === vm) this.vms.delete(vm.name);
    });
  }

  start(name: string): Promise<VmSupervisor> {
    return this.serialized(name, () => this.startNow(name));
  }

  /**
   * Snapshot a running VM into `dir`. With `diskOverlay`, each writable disk is
   * frozen: the VM goes on with a new qcow2 overlay next to it (IMAGE.SNAP.qcow2,
   * backed by the image, which the snapshot keeps), and its definition names the
   * overlay from then on.
   */
  snapshotVm(name: string, dir: string, snapName: string, diskOverlay: boolean): Promise<SnapshotResult> {
    return this.serialized(name, async () => {
      const vm = this.get(name);
      const h = vm.handle;
      if (!h || !h.running) throw new ApiError(409, `VM ${name} is not running`);
      let overlays: (string | null)[] | undefined;
      if (diskOverlay) {
        if (vm.config.snapshot !== undefined) throw new ApiError(400, 'diskOverlay: not for a VM defined from a snapshot (its disks come from the snapshot at every start)');
        overlays = (vm.config.disks ?? []).map((d) => (d.readonly === true ? null : overlayPathFor(d.path, snapName)));
        if (!overlays.some((o) => o !== null)) throw new ApiError(400, 'diskOverlay: the VM has no writable disk');
      }
      // The stored definition names the overlays before the switch: should the
      // daemon die right after it, the next start must not go back to the frozen images.
      const prev = vm.definition;
      const planned = (overlays ?? []).flatMap((path, disk) => (path === null ? [] : [{ disk, path }]));
      if (planned.length) this.store.save(name, { ...prev, config: { ...prev.config, disks: disksWithOverlays(prev.config.disks ?? [], planned) } });
      let r: SnapshotResult;
      try {
        r = await h.snapshot(dir, overlays);
      } catch (e) {
        if (planned.length) this.store.save(name, prev);
        const msg = e instanceof Error ? e.message : String(e);
        this.events.add(name, 'snapshot', `snapshot ${snapName} failed: ${msg}`, 'error');
        throw new ApiError(400, `snapshot: ${msg}`);
      }
      if (r.overlays?.length) vm.adoptOverlays(r.overlays);
      this.events.add(name, 'snapshot', `snapshot ${snapName} written${r.overlays?.length ? ' (disks now on overlays)' : ''}`);
      return r;
    });
  }

  /**
   * Define `count` clones of a snapshot (PREFIX-1 .. PREFIX-N) and start them
   * unless asked not to. All or nothing: the names and the memory budget are
   * checked for all of them first, and a failure part way removes the ones made.
   */
  async createClones(snapshot: string, body: unknown): Promise<VmSupervisor[]> {
    const req: CloneRequest = validateClone(body, this.limits);
    const snap = this.snapshots.read(snapshot);
    const prefix = req.prefix ?? snapshot;
    const names = Array.from({ length: req.count }, (_, i) => `${prefix}-${i + 1}`);
    if (names.some((n) => n.length > 63)) throw new ApiError(400, `prefix: too long for ${req.count} clone names (at most 63 characters each)`);
    const taken = names.filter((n) => this.has(n));
    if (taken.length > 0) throw new ApiError(409, `prefix: ${taken.join(', ')} already exist`);
    const need = req.count * snap.config.memMiB;
    const free = this.opts.memoryBudgetMiB - this.reservedMiB();
    if (need > free) {
      throw new ApiError(409, `memory: ${req.count} clones of ${snap.config.memMiB} MiB need ${need} MiB but only ${free} MiB of the host's memory budget (${this.opts.memoryBudgetMiB} MiB) is left`);
    }
    const savedNics = ((snap.machine as { virtio?: { name?: string }[] }).virtio ?? []).filter((v) => v.name?.startsWith('virtio-net')).length;
    const nics: NonNullable<CreateVmRequest['nics']> = req.nics ?? Array.from({ length: savedNics }, () => ({ mode: 'user' as const }));
    const withMac = nics.findIndex((n) => n.mac !== undefined);
    if (withMac >= 0) throw new ApiError(400, `nics[${withMac}].mac: each clone takes MACs derived from its name; give none`);
    const configs = names.map((name) =>
      validateCreate({
        name,
        memory: snap.config.memMiB,
        kernel: snap.config.kernel,
        ...(snap.config.initrd !== undefined ? { initrd: snap.config.initrd } : {}),
        snapshot,
        clone: true,
        deterministic: snap.config.deterministic,
        ...(snap.config.cpus !== undefined && snap.config.cpus !== 1 ? { cpus: snap.config.cpus } : {}),
        nics: nics.map((n) => structuredClone(n)),
        ...(req.cpu ? { cpu: req.cpu } : {}),
        ...(req.isolation ? { isolation: req.isolation } : {}),
      }, this.limits),
    );
    const made: VmSupervisor[] = [];
    try {
      for (const c of configs) made.push(await this.serialized(c.name, () => this.createChecked(c)));
      if (req.start !== false) for (const vm of made) await this.start(vm.name);
    } catch (e) {
      for (const vm of made) await this.remove(vm.name, true).catch(() => {});
      throw e;
    }
    return made;
  }

  /** Stop (if running) and start again, as one operation. */
  restart(name: string): Promise<VmSupervisor> {
    return this.serialized(name, async () => {
      const vm = this.get(name);
      if (!vm.handle) throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
      await vm.stop();
      return this.startNow(name);
    });
  }

  private async startNow(name: string): Promise<VmSupervisor> {
    const vm = this.get(name);
    if (vm.state === 'running' || vm.state === 'paused' || vm.handle || vm.starting) throw new ApiError(409, `VM '${name}' is already running`);
    vm.resetRetries();
    this.checkImageConflicts(vm);
    try {
      await vm.start();
    } catch (e) {
      // A NIC backend could not start (a host port in use, a missing TAP device).
      throw new ApiError(409, e instanceof Error ? e.message : String(e));
    }
    return vm;
  }

  /** 409 when another running VM of this daemon uses one of this VM's files in a conflicting way (disks.ts). */
  private checkImageConflicts(vm: VmSupervisor): void {
    let mine;
    try {
      mine = vm.plannedLocks();
    } catch (e) {
      throw new ApiError(409, e instanceof Error ? e.message : String(e));
    }
    const others = [...this.vms.values()].filter((o) => o !== vm && o.lockedFiles).map((o) => ({ name: o.name, files: o.lockedFiles! }));
    const conflict = findLockConflict(mine, others);
    if (conflict) throw conflict;
  }

  pause(name: string): Promise<VmSupervisor> {
    return this.serialized(name, () => this.pauseNow(name));
  }

  private pauseNow(name: string): VmSupervisor {
    const vm = this.get(name);
    if (vm.state !== 'running') throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
    vm.pause();
    return vm;
  }

  resume(name: string): Promise<VmSupervisor> {
    return this.serialized(name, () => this.resumeNow(name));
  }

  private resumeNow(name: string): VmSupervisor {
    const vm = this.get(name);
    if (vm.state !== 'paused') throw new ApiError(409, `VM '${name}' is ${vm.state}, not paused`);
    vm.resume();
    return vm;
  }

  /**
   * Stop a VM: `kill` ends it at once; otherwise the guest gets its power
   * button and `timeoutS` seconds to power off (0: stop at once) before it is stopped.
   */
  stop(name: string, kill: boolean, timeoutS = DEFAULT_SHUTDOWN_TIMEOUT_S): Promise<VmSupervisor> {
    // A kill does not queue behind a graceful stop that is waiting for its guest.
    const waiting = this.vms.get(name);
    if (kill && waiting?.shuttingDown) return waiting.kill().then(() => waiting);
    return this.serialized(name, () => this.stopNow(name, kill, timeoutS));
  }

  private async stopNow(name: string, kill: boolean, timeoutS: number): Promise<VmSupervisor> {
    const vm = this.get(name);
    if (!vm.handle) {
      throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
    }
    if (kill) await vm.kill();
    else await vm.shutdown(timeoutS * 1000);
    return vm;
  }

  /** Reboot a running VM: the restart key and `timeoutS` seconds for the guest, then a reset (0: reset at once). */
  reboot(name: string, timeoutS = DEFAULT_SHUTDOWN_TIMEOUT_S): Promise<VmSupervisor> {
    return this.serialized(name, async () => {
      const vm = this.get(name);
      if (vm.state !== 'running' && vm.state !== 'paused') throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
      if (vm.state === 'paused') throw new ApiError(409, `VM '${name}' is paused; resume it first`);
      await vm.reboot(timeoutS * 1000);
      return vm;
    });
  }

  remove(name: string, force: boolean): Promise<void> {
    return this.serialized(name, () => this.removeNow(name, force));
  }

  private async removeNow(name: string, force: boolean): Promise<void> {
    const b = this.broken.get(name);
    if (b && !this.vms.has(name)) {
      for (const f of b.files) rmSync(f, { force: true });
      if (b.inPlace) this.store.remove(name);
      this.broken.delete(name);
      this.events.forget(name);
      this.events.add(name, 'deleted', 'broken entry deleted');
      return;
    }
    const vm = this.get(name);
    if (vm.handle) {
      if (!force) throw new ApiError(409, `VM '${name}' is ${vm.state}; stop it first or delete with ?force=true`);
      await vm.kill();
    }
    vm.cancelRestart();
    vm.removed = true;
    this.store.remove(name);
    vm.removeLogs();
    rmSync(vm.cloneDir, { recursive: true, force: true });
    this.vms.delete(name);
    this.history.forget(name);
    this.events.forget(name);
    this.events.add(name, 'deleted', force ? 'deleted (forced)' : 'deleted');
  }

  /** Change CPU weight/cap, disk and NIC limits (also on a running VM) and the balloon target (running VMs). */
  patch(name: string, body: unknown): Promise<VmSupervisor> {
    const req = validatePatch(body, this.limits);
    return this.serialized(name, () => this.patchNow(name, req));
  }

  private async patchNow(name: string, req: ReturnType<typeof validatePatch>): Promise<VmSupervisor> {
    const vm = this.get(name);
    const cpu = { ...(vm.config.cpu ?? {}) };
    if (typeof req.cpu?.cap === 'number') checkCap(req.cpu.cap, vm.config.cpus ?? vm.config.vcpus ?? 1, this.limits);
    if (req.cpu?.weight !== undefined) cpu.weight = req.cpu.weight;
    if (req.cpu?.cap === null) delete cpu.cap;
    else if (req.cpu?.cap !== undefined) cpu.cap = req.cpu.cap;
    const disks = (vm.config.disks ?? []).map((d) => ({ ...d }));
    for (const [i, d] of (req.disks ?? []).entries()) {
      if (!disks[d.index]) throw new ApiError(400, `disks[${i}].index: the VM has no disk ${d.index} (it has ${disks.length})`);
      disks[d.index].limits = d.limits;
    }
    const nics = (vm.config.nics ?? []).map((n) => ({ ...n }));
    for (const [i, n] of (req.nics ?? []).entries()) {
      if (!nics[n.index]) throw new ApiError(400, `nics[${i}].index: the VM has no NIC ${n.index} (it has ${nics.length})`);
      nics[n.index].limits = n.limits;
    }
    if (req.balloon) {
      if (!vm.config.balloon) throw new ApiError(409, 'balloon: the VM was created without a balloon (balloon: true)');
      if (!vm.handle) throw new ApiError(409, `balloon: VM '${name}' is ${vm.state}, not running`);
      if (req.balloon.targetMiB >= vm.config.memory) throw new ApiError(400, `balloon.targetMiB: must be less than the VM's memory (${vm.config.memory} MiB)`);
    }
    // Running VMs take the new limits at once (the worker applies them between slices).
    const h = vm.handle;
    try {
      if (h) {
        for (const d of req.disks ?? []) await h.setDiskLimits(d.index, diskRateLimits(d.limits));
        for (const n of req.nics ?? []) await h.setNicLimits(n.index, nicRateLimits(n.limits));
        if (req.balloon) await h.setBalloonTarget(req.balloon.targetMiB);
      }
    } catch (e) {
      throw new ApiError(409, e instanceof Error ? e.message : String(e));
    }
    const config = { ...vm.config, cpu, ...(vm.config.disks ? { disks } : {}), ...(vm.config.nics ? { nics } : {}) };
    this.store.save(name, { version: 1, config, createdAt: vm.createdAt });
    vm.config = config; // the scheduler reads weight and cap each period
    this.events.add(name, 'changed', `changed: ${describePatch(req)}`);
    return vm;
  }

  /** Turn the supervisor's state changes into events. */
  private track(vm: VmSupervisor): VmSupervisor {
    let restarts = vm.restarts;
    let prev = vm.state;
    vm.on('state', (s) => {
      const was = prev;
      prev = s;
      if (s === 'running') {
        if (was === 'paused') this.events.add(vm.name, 'resumed', 'resumed');
        else if (vm.restarts > restarts) this.events.add(vm.name, 'restarted', `restarted by its policy (${vm.config.restart?.policy ?? 'no'}, restart ${vm.restarts})`, 'warning');
        else this.events.add(vm.name, 'started', vm.config.snapshot !== undefined ? `started from snapshot ${vm.config.snapshot}` : 'started');
        restarts = vm.restarts;
      } else if (s === 'paused') this.events.add(vm.name, 'paused', 'paused');
      else if (s === 'stopped' && !vm.removed) this.events.add(vm.name, 'stopped', `stopped${vm.lastExit ? `: ${vm.lastExit}` : ''}`);
      else if (s === 'failed') this.events.add(vm.name, 'failed', `failed: ${vm.lastFailure ?? 'unknown reason'}`, 'error');
    });
    return vm;
  }

  /** Regular files of the images directory, for the create form. */
  images(): ImageEntry[] {
    return listImages(this.opts.imagesDir);
  }

  describe(vm: VmSupervisor): Record<string, unknown> {
    const notes: string[] = [];
    return {
      name: vm.name,
      state: vm.state,
      config: vm.config,
      createdAt: vm.createdAt,
      lastFailure: vm.lastFailure,
      lastExit: vm.lastExit,
      restarts: vm.restarts,
      isolation: vm.isolation,
      pid: vm.pid,
      notes,
    };
  }

  vmStats(vm: VmSupervisor): Record<string, unknown> {
    const live = vm.live();
    const instructions = live ? Number(live.instret) : 0;
    const running = live !== null;
    return {
      name: vm.name,
      state: vm.state,
      runState: live ? RUN_STATE_NAMES[live.state] ?? 'unknown' : 'exited',
      uptimeSeconds: running ? (Date.now() - vm.startedAt) / 1000 : 0,
      instructions,
      mips: vm.window.mips,
      busyUs: live?.busyUs ?? 0,
      cpuShare: vm.window.cpuShare,
      instructionShare: vm.window.instructionShare,
      translatedShare: live && live.instret > 0n ? Number(live.jitInstret) / Number(live.instret) : 0,
      weight: vm.weight,
      cap: vm.cap ?? null,
      memoryReservedMiB: vm.config.memory,
      // Guest RAM the host really backs (touched and not released by the balloon); null when unknown.
      memoryTouchedMiB: live && live.ramResidentBytes >= 0 ? live.ramResidentBytes / 1048576 : null,
      restarts: vm.restarts,
      lastFailure: vm.lastFailure,
      // Same shape whatever the VM is doing: empty lists and null when it is not running.
      devices: { nics: vm.handle?.nicStats() ?? [], ...(vm.handle?.sharedDeviceStats() ?? NO_DEVICE_STATS) },
      // One entry per hart, running or not (a VM that is not running: all stopped, counters 0).
      harts: hartsOfVm(vm.handle?.hartStats() ?? [], vm.config.cpus ?? vm.config.vcpus ?? 1),
      consoleLog: { writtenBytes: vm.consoleLog.writtenBytes, droppedBytes: vm.consoleLog.droppedBytes },
    };
  }

  hostStats(): Record<string, unknown> {
    const byState: Record<VmState | 'broken', number> = { created: 0, running: 0, paused: 0, stopped: 0, failed: 0, broken: this.broken.size };
    let instructions = 0;
    let busyUs = 0;
    let mips = 0;
    let cpuShare = 0;
    let touchedBytes = 0;
    for (const vm of this.vms.values()) {
      byState[vm.state]++;
      const live = vm.live();
      if (live) {
        instructions += Number(live.instret);
        busyUs += live.busyUs;
        if (live.ramResidentBytes > 0) touchedBytes += live.ramResidentBytes;
      }
      mips += vm.window.mips;
      cpuShare += vm.window.cpuShare;
    }
    const mem = process.memoryUsage();
    return {
      vms: this.vms.size + this.broken.size,
      byState,
      cpus: this.opts.cpus,
      memoryBudgetMiB: this.opts.memoryBudgetMiB,
      memoryReservedMiB: this.reservedMiB(),
      // Guest RAM the host backs for all running VMs (touched, not given back by a balloon).
      memoryTouchedMiB: touchedBytes / 1048576,
      instructions,
      busyUs,
      mips,
      cpuShare,
      uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      daemonRssMiB: mem.rss / 1048576,
    };
  }
}

/** One line for the events list: what a PATCH changed. */
function describePatch(req: ReturnType<typeof validatePatch>): string {
  const parts: string[] = [];
  if (req.cpu?.weight !== undefined) parts.push(`CPU weight ${req.cpu.weight}`);
  if (req.cpu?.cap === null) parts.push('CPU cap removed');
  else if (req.cpu?.cap !== undefined) parts.push(`CPU cap ${req.cpu.cap}`);
  for (const d of req.disks ?? []) parts.push(`disk ${d.index} limits ${JSON.stringify(d.limits)}`);
  for (const n of req.nics ?? []) parts.push(`NIC ${n.index} limits ${JSON.stringify(n.limits)}`);
  if (req.balloon) parts.push(`balloon target ${req.balloon.targetMiB} MiB`);
  return parts.join(', ');
}
