// The VMs of this host: definitions (kept on disk), the memory budget they are
// reserved against, their supervisors, the CPU scheduler and the hang
// watchdog. Routes call these methods; every method either does all of its
// work or throws an ApiError having changed nothing.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DefinitionStore } from './store.js';
import { ApiError, resolveImagePath, validateCreate, validatePatch, type HostLimits } from './validate.js';
import { readSnapshot } from '../vm/snapshot.js';
import { VmSupervisor, type SupervisorOptions } from './vm-supervisor.js';
import { FairShareScheduler } from './scheduler.js';
import { RUN_STATE_BOOTING, RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, RUN_STATE_RUNNING, RUN_STATE_THROTTLED } from '../vm/protocol.js';
import type { CreateVmRequest, VmDefinition, VmState } from './types.js';
import { diskRateLimits, nicRateLimits, nicSpecs } from './nics.js';
import { vmProcessesCpuUs } from './process-vm-handle.js';

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
}

const RUN_STATE_NAMES: Record<number, string> = {
  [RUN_STATE_BOOTING]: 'booting',
  [RUN_STATE_RUNNING]: 'running',
  [RUN_STATE_IDLE]: 'idle',
  [RUN_STATE_PAUSED]: 'paused',
  [RUN_STATE_THROTTLED]: 'throttled',
  [RUN_STATE_EXITED]: 'exited',
};

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
  readonly scheduler: FairShareScheduler;
  readonly startedAt = Date.now();
  private readonly store: DefinitionStore;
  private readonly supervisorOpts: SupervisorOptions;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(readonly opts: HostOptions) {
    this.store = new DefinitionStore(opts.stateDir);
    const logDir = join(opts.stateDir, 'logs');
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    this.supervisorOpts = {
      wasmPath: opts.wasmPath,
      logDir,
      logMaxBytes: opts.logMaxBytes,
      hangTimeoutMs: opts.hangTimeoutMs,
      workerMaxHeapMiB: opts.workerMaxHeapMiB,
      log: opts.log,
      snapshotsDir: join(opts.stateDir, 'snapshots'),
    };
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

  /** Load stored definitions (listed as stopped) and start the scheduler and watchdog. */
  open(): void {
    for (const def of this.store.loadAll((m) => this.opts.log(m))) {
      if (this.reservedMiB() + def.config.memory > this.opts.memoryBudgetMiB) {
        this.opts.log(`${def.config.name}: kept on disk but not loaded: its ${def.config.memory} MiB exceed the memory budget`);
        continue;
      }
      this.vms.set(def.config.name, new VmSupervisor(def, this.supervisorOpts, 'stopped'));
    }
    this.scheduler.start();
    this.watchdog = setInterval(() => {
      // After the loop's I/O phase: a process VM's reports that queued up while the daemon was busy are read first.
      setImmediate(() => {
        const now = Date.now();
        for (const vm of this.vms.values()) vm.checkHeartbeat(now);
      });
    }, Math.min(1000, this.opts.hangTimeoutMs / 4));
    this.watchdog.unref();
  }

  /** Stop every VM and the background timers. */
  async close(): Promise<void> {
    this.scheduler.stop();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    await Promise.all([...this.vms.values()].map((vm) => vm.stop()));
    for (const vm of this.vms.values()) vm.cancelRestart();
  }

  reservedMiB(): number {
    let sum = 0;
    for (const vm of this.vms.values()) sum += vm.config.memory;
    return sum;
  }

  get(name: string): VmSupervisor {
    const vm = this.vms.get(name);
    if (!vm) throw new ApiError(404, `no VM named '${name}'`);
    return vm;
  }

  create(body: unknown): VmSupervisor {
    const config = validateCreate(body, this.limits);
    if (this.vms.has(config.name)) throw new ApiError(409, `name: a VM named '${config.name}' already exists`);
    const free = this.opts.memoryBudgetMiB - this.reservedMiB();
    if (config.memory > free) {
      throw new ApiError(
        409,
        `memory: ${config.memory} MiB requested but only ${free} MiB of the host's memory budget (${this.opts.memoryBudgetMiB} MiB) is left`,
      );
    }
    const nics = nicSpecs(config);
    if (!nics.ok) throw new ApiError(400, nics.error);
    if (config.snapshot !== undefined) checkSnapshotSource(join(this.opts.stateDir, 'snapshots', config.snapshot), config, this.opts.imagesDir);
    const def: VmDefinition = { version: 1, config, createdAt: new Date().toISOString() };
    this.store.save(config.name, def); // throws before anything is registered
    const vm = new VmSupervisor(def, this.supervisorOpts, 'created');
    this.vms.set(config.name, vm);
    return vm;
  }

  async start(name: string): Promise<VmSupervisor> {
    const vm = this.get(name);
    if (vm.state === 'running' || vm.state === 'paused' || vm.handle || vm.starting) throw new ApiError(409, `VM '${name}' is already running`);
    vm.resetRetries();
    try {
      await vm.start();
    } catch (e) {
      // A NIC backend could not start (a host port in use, a missing TAP device).
      throw new ApiError(409, e instanceof Error ? e.message : String(e));
    }
    return vm;
  }

  pause(name: string): VmSupervisor {
    const vm = this.get(name);
    if (vm.state !== 'running') throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
    vm.pause();
    return vm;
  }

  resume(name: string): VmSupervisor {
    const vm = this.get(name);
    if (vm.state !== 'paused') throw new ApiError(409, `VM '${name}' is ${vm.state}, not paused`);
    vm.resume();
    return vm;
  }

  async stop(name: string, kill: boolean): Promise<VmSupervisor> {
    const vm = this.get(name);
    if (!vm.handle) {
      throw new ApiError(409, `VM '${name}' is ${vm.state}, not running`);
    }
    await (kill ? vm.kill() : vm.stop());
    return vm;
  }

  async remove(name: string, force: boolean): Promise<void> {
    const vm = this.get(name);
    if (vm.handle) {
      if (!force) throw new ApiError(409, `VM '${name}' is ${vm.state}; stop it first or delete with ?force=true`);
      await vm.kill();
    }
    vm.cancelRestart();
    this.store.remove(name);
    vm.removeLogs();
    this.vms.delete(name);
  }

  /** Change CPU weight/cap, disk and NIC limits (also on a running VM) and the balloon target (running VMs). */
  async patch(name: string, body: unknown): Promise<VmSupervisor> {
    const vm = this.get(name);
    const req = validatePatch(body, this.limits);
    const cpu = { ...(vm.config.cpu ?? {}) };
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
    return vm;
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
      devices: { nics: vm.handle?.nicStats() ?? [] },
    };
  }

  hostStats(): Record<string, unknown> {
    const byState: Record<VmState, number> = { created: 0, running: 0, paused: 0, stopped: 0, failed: 0 };
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
      vms: this.vms.size,
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
