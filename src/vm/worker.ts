// The worker thread that runs one VM. It never returns to its event loop while
// the guest runs: control (input, stop) arrives through the shared control
// block, output leaves by postMessage. An idle guest sleeps in Atomics.wait
// until its next timer deadline or new input.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { readFileSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { TierBudget, setDefaultBudget } from './tier-budget.js';
import {
  CTRL_PAUSE, CTRL_STATS, CTRL_STOP, CTRL_WAKE, LIVE_BUSY_US, LIVE_CREDIT, LIVE_HEARTBEAT_MS, LIVE_INSTRET,
  LIVE_JIT_INSTRET, LIVE_RAM_RESIDENT, LIVE_BOOTS, LIVE_CONSOLE_BYTES, LIVE_STATE, RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, RUN_STATE_RUNNING,
  RUN_STATE_THROTTLED, pendingInput, pullInput, runsHartThreads, type SharedControl, type VmConfig, type WorkerMessage,
} from './protocol.js';
import { VirtMachine, EXIT_WFI, type MachineConfig, type MachineHost } from '../machine/virt.js';
import { MAX_SYSTEM_MAP_BYTES, panicSymbolsFor, TextSymbols } from '../machine/kernel-symbols.js';
import { PcSamples } from './pc-samples.js';
import { DEFAULT_STALL_TIMEOUT_MS, StallWatch } from './stall-watch.js';
import { TIMEBASE_HZ } from '../machine/layout.js';
import { statsReport, type LoopStats } from './stats.js';
import { DEVICE_STATS_PUBLISH_MS, publishDeviceStats } from './device-stats-block.js';
import { HartStatsPublisher } from './hart-stats-block.js';
import type { BlockBackend } from '../storage/backend.js';
import { openDisk } from '../storage/open.js';
import { workerNic, type NicChannelInit } from '../net/nic-channel.js';
import { setCountLookups } from '../jit/translate.js';
import { jitCacheDir, jitCacheWanted, startJitCache, translatorBuildId, type JitCacheRun } from './jit-cache.js';
import { checkDeviceConfig, drainCommands, type CommandState } from './commands.js';
import { hostMemory } from './host-memory.js';
import { loadSnapshotMemory, readSnapshot, writeSnapshot, type SnapshotConfig } from './snapshot.js';
import type { RestoreSplit, SnapshotResult, VmCommand } from './protocol.js';
import { prepareOverlays } from './disk-freeze.js';
import { GdbSession } from './gdb-session.js';
import { SwappableDisk } from './migration/swappable-disk.js';
import { DiskCopy, SourceMigration, applyPages } from './migration/worker-side.js';
import { isWarmWorkerData, prepareCore, takePreparedCore, warmUp, type WarmWorkerData } from './warm-up.js';
import { HartThreads } from './hart-threads.js';
import { makeCollectGarbage } from './collect-garbage.js';
import { jitDumper, jitRegionsFromEnv } from './jit-env.js';

interface WorkerInit {
  config: VmConfig;
  control: SharedControl;
  /** Shared rings and counters of each NIC (the backends live on the owner's thread or a NIC I/O thread). */
  nics?: NicChannelInit[];
  /** Command port (see commands.ts); absent when the owner does not use commands. */
  commands?: MessagePort;
  /** The debugger's byte channel (with config.gdb; see gdb-session.ts). */
  gdb?: MessagePort;
}

const SLICE = 2_000_000; // instructions per call into the core
/** A restored VM arms its kernel-panic watch this long after it runs again (ms). */
const PANIC_WATCH_DELAY_MS = 1000;
/** A restored VM translates nothing for this long (ms): its first commands answer sooner interpreted (Jit.hold). */
const JIT_HOLD_AFTER_RESTORE_MS = 500;
/** An idle guest drops its translations after this long (see housekeeping()), if it holds at least IDLE_DROP_MODULES. */
const IDLE_DROP_MS = 10_000;
/** Below this many million guest instructions per second (and waiting in WFI) a guest counts as idle. */
const IDLE_MIPS = 5;
const IDLE_DROP_MODULES = 32;
/** An idle guest that translated since the last collection collects its garbage at most this often (see housekeeping()). */
const IDLE_TIDY_MS = 15_000;
/** With a NIC, received frames wait for the end of a slice: shorter slices keep network latency low. */
const NET_SLICE = 200_000;
const TICKS_PER_MS = BigInt(TIMEBASE_HZ / 1000);
/** After panic() is entered, the kernel runs this many more instructions to print its message, then the VM ends. */
const PANIC_GRACE_INSNS = 200_000_000n;
/** Exit of a VM that never showed a sign of life (see VmConfig.bootWatchInsns). */
function neverCameUp(insns: number): { code: number; reason: string } {
  return {
    code: 1,
    reason: `the guest never came up: no interrupt, program or idle wait in its first ${insns.toLocaleString('en-US')} instructions (a kernel that stopped early, e.g. with too little memory; see the console log)`,
  };
}
/** Exit of a VM whose kernel panicked. */
const PANIC_EXIT = { code: 1, reason: 'kernel panic' };

function post(msg: WorkerMessage): void {
  parentPort!.postMessage(msg);
}

/** Entropy for virtio-rng: the host CSPRNG, or a fixed-seed generator in deterministic runs (not for secrets). */
function entropySource(deterministic: boolean): (n: number) => Uint8Array {
  if (!deterministic) return (n) => randomFillSync(new Uint8Array(n));
  let s = 0x9e3779b9;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i] = s & 0xff;
    }
    return out;
  };
}

/**
 * A full garbage collection, to free the code space of dropped translations
 * (see Jit's onFlush). Flushes are rare (every 1024 modules), so the cost is small.
 */
const collectGarbage = makeCollectGarbage();

// V8's tier-up budget for translated code (process-wide default, set before the
// first module is compiled; per module see tier-budget.ts).
setDefaultBudget();

const disks: SwappableDisk[] = [];
/** The hart threads of the running machine (SMP phase 2), ended however the worker ends. */
let hartThreads: HartThreads | null = null;
/**
 * Longest device-thread sleep while hart threads run, and while every hart waits
 * (devices with deadlines, hart requests, the owner and NICs wake it sooner; the
 * wake-ups in between only publish counters and meter credit).
 */
const THREADS_WAIT_MS = 50;
const THREADS_IDLE_WAIT_MS = 250;

/** VmConfig.consoleSize when it is usable (the owner validated it; a bad one is ignored, not fatal). */
function validConsoleSize(s: VmConfig['consoleSize']): { cols: number; rows: number } | null {
  const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xffff;
  return s && ok(s.cols) && ok(s.rows) ? { cols: s.cols, rows: s.rows } : null;
}

/** Flush and close every disk (at exit, also after an emulator failure). */
function closeDisks(): string | null {
  let problem: string | null = null;
  for (const d of disks.splice(0)) {
    try {
      d.release();
    } catch (e) {
      problem ??= `closing a disk failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  return problem;
}

/**
 * What this worker runs: its workerData, or for a warm worker (warm-worker.ts,
 * started ahead of need with its modules loaded) the first message, which the
 * owner sends when it hands the worker a VM. Also when the VM was handed over
 * (performance.now()).
 */
async function takeInit(): Promise<{ init: WorkerInit; at: number }> {
  const data = workerData as WorkerInit | WarmWorkerData;
  if (!isWarmWorkerData(data)) return { init: data, at: 0 };
  warmUp(data.wasmPath);
  if (data.prepareMiB !== undefined) prepareCore(data.wasmPath, data.prepareMiB);
  const init = await new Promise<WorkerInit>((resolve) => parentPort!.once('message', (m: { type: 'init'; init: WorkerInit }) => resolve(m.init)));
  return { init, at: performance.now() };
}

async function main(): Promise<void> {
  const { init, at: handedOverAt } = await takeInit();
  const { config, control, nics: nicChannels = [], commands, gdb: gdbPort } = init;
  const nics = nicChannels.map(workerNic);
  // Translated code counts its TLB lookups only when statistics were asked for (it costs speed).
  setCountLookups(config.stats === true);
  const badDevice = checkDeviceConfig(config);
  if (badDevice) {
    post({ type: 'error', message: badDevice });
    post({ type: 'exit', code: 1, reason: badDevice });
    return;
  }
  const openOne = (d: NonNullable<VmConfig['disks']>[number]): Promise<BlockBackend> => {
    const backing = d.backingRoot !== undefined ? { root: d.backingRoot } : {};
    return openDisk(d.path, { format: d.format, readOnly: d.readOnly, backing, guardProbedRaw: d.guardProbedRaw, seekData: hostMemory()?.seekData });
  };
  /** (Re)open every disk image into its SwappableDisk. */
  const openDisks = async () => {
    for (const [i, d] of (config.disks ?? []).entries()) {
      if (!disks[i].backend) disks[i].attach(await openOne(d));
    }
  };
  for (const [i, d] of (config.disks ?? []).entries()) {
    if (config.incoming) {
      // Opened at migrateStart, once the source has let go of the images.
      const size = config.incoming.diskSizes[i];
      if (!Number.isSafeInteger(size) || size < 0) throw new Error(`incoming: no size for disk ${i}`);
      disks.push(new SwappableDisk(size, d.readOnly === true, null));
    } else {
      const b = await openOne(d);
      disks.push(new SwappableDisk(b.size, b.readOnly, b));
    }
  }
  const diskConfigs = disks.map((backend, i) => ({ backend, serial: config.disks![i].serial, limits: config.disks![i].limits }));
  const hostMem = hostMemory();
  const balloon = config.balloon ? { ...(config.balloon === true ? {} : config.balloon) } : null;
  // Host clock origin for both the guest's realtime ticks and the devices' clock (rate
  // limiters). A restored VM moves it back so guest time goes on from the snapshot's.
  let t0 = performance.now();
  const randomBytes = entropySource(config.deterministic);
  const wasm = readFileSync(config.wasmPath);
  // Boot images are read for each boot (a guest reboot reads them again) rather than
  // kept: a Debian kernel is about 30 MiB that would otherwise stay resident.
  const image = (path: string | undefined) => {
    if (!path) return undefined;
    const b = readFileSync(path); // small files come from a shared pool: keep the view's bounds
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  };

  // The kernel's panic() entry, from its System.map, checked against the kernel itself.
  // Found once, when first needed: a restore arms the watch a moment after the guest
  // runs again (parsing the map and reading the kernel would delay its first slice).
  let panicVasFound: bigint[] | null = null;
  const panicVas = (): bigint[] => (panicVasFound ??= findPanicVas());
  const findPanicVas = (): bigint[] => {
    let found: bigint[] = [];
    if (!config.systemMap || !config.kernel) return found;
    let problem: string;
    try {
      if (statSync(config.systemMap).size > MAX_SYSTEM_MAP_BYTES) throw new Error(`larger than ${MAX_SYSTEM_MAP_BYTES} bytes`);
      const r = panicSymbolsFor(readFileSync(config.systemMap, 'latin1'), image(config.kernel)!);
      problem = r.ok ? '' : r.error;
      if (r.ok) found = r.symbols.vpanic === undefined ? [r.symbols.panic] : [r.symbols.panic, r.symbols.vpanic];
    } catch (e) {
      problem = `cannot read ${config.systemMap}: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (problem) post({ type: 'error', message: `kernel panics are not watched: ${problem}; a stalled guest is failed after ${Math.round((config.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS) / 1000)} s instead` });
    return found;
  };
  /** A restored machine whose panic watch is not armed yet (see panicVas). */
  let panicWatchPending = false;

  /** When tidy() last ran (performance.now()). */
  let tidiedAt = -Infinity;
  /** Collect garbage and give the C heap's free memory back (after boot, after dropping translations, when gone idle). */
  const tidy = () => {
    collectGarbage?.();
    hostMem?.trim();
    tidiedAt = performance.now();
  };
  let exit: { code: number; reason: string } | null = null;
  let rebootRequested = false;
  /** instret at which the kernel entered panic(), or null. */
  let panicAt: bigint | null = null;
  // The stall watch stands in for the panic breakpoint: with panic() watched it is
  // off unless asked for, since kernel work that no program waits in (a module's
  // crypto self-tests in kernel threads, at interpreter speed on a loaded host)
  // can look like a stall, while a panic is caught exactly anyway.
  // A restore arms the panic watch later: a given System.map counts as watched
  // until then (the stall watch comes on should it turn out not to parse).
  const lazyPanicWatch = config.restore !== undefined && !config.deterministic;
  const panicWatched = lazyPanicWatch ? config.systemMap !== undefined && config.kernel !== undefined : panicVas().length > 0;
  let stall = new StallWatch(config.stallTimeoutMs ?? (panicWatched ? 0 : DEFAULT_STALL_TIMEOUT_MS));
  let stallCheckedAt = 0;
  let busyAtStallCheck = 0;
  let wfiSinceStallCheck = false;
  /** Harts that entered WFI so far (HartSet.stats.wfis), as last seen. */
  let wfisSeen = 0;
  /** Restore from config.restore on the first boot only (a later guest reboot boots the kernel). */
  let restoreFrom = config.restore;
  /** A debugger's checkpoint to rebuild the machine from (reverse execution), instead of booting. */
  let rewindTo: { state: unknown; loadRam: (ram: Uint8Array) => void } | undefined;
  /** Console output is held back while a debugger replays part of the run. */
  let muted = false;
  let incoming = config.incoming !== undefined;
  /** Destination of a migration: the device state, once it arrived. */
  let incomingState: unknown = null;
  /** Destination: migrateStart came while the state was still being taken. */
  let startRequested = false;
  /** A warm worker's prepared core when it fits (the first boot only), else the core's bytes. */
  let usedPreparedCore = false;
  const coreSource = (ramSize: number) => {
    const p = takePreparedCore(config.wasmPath, ramSize);
    usedPreparedCore ||= p !== null;
    return p ?? new Uint8Array(wasm);
  };
  /** The tier-up budget of the current machine's translations. */
  let tierBudget = new TierBudget();
  const boot = (): VirtMachine | null => {
    const from = restoreFrom;
    restoreFrom = undefined;
    const rewind = rewindTo;
    rewindTo = undefined;
    const migrateIn = incoming;
    incoming = false;
    const machineConfig: MachineConfig = {
        ramSize: config.memMiB * 1024 * 1024,
        // A restore needs no boot images: they are in the snapshot's RAM.
        kernel: from ? undefined : image(config.kernel),
        initrd: from ? undefined : image(config.initrd),
        bios: from ? undefined : image(config.bios),
        bootargs: config.append,
        deterministic: config.deterministic,
        jit: config.jit !== false,
        harts: config.cpus ?? 1,
        disks: diskConfigs,
        // A clone's NICs bring their own MACs (new identity), the snapshot's are not required.
        nics: from && config.clone ? nics.map((n) => ({ ...n, newMac: true })) : nics,
        rng: config.rng ?? false,
        virtioConsole: config.virtioConsole ?? true,
        powerButton: config.powerButton ?? true,
        balloon: balloon ? { ...balloon, release: hostMem?.release } : undefined,
    };
    const machineHost: MachineHost = {
        consoleOut: (data) => {
          Atomics.add(control.live, LIVE_CONSOLE_BYTES, BigInt(data.length));
          if (!muted) post({ type: 'console', data });
        },
        power: (kind, code) => {
          if (panicAt !== null) exit = PANIC_EXIT; // panic=N reboots or powers off: still a panic
          else if (kind === 'reset') rebootRequested = true;
          else if (kind === 'fail') exit = { code: code || 1, reason: `guest reported failure (code ${code})` };
          else exit = { code: 0, reason: 'guest powered off' };
        },
        randomBytes,
        log: (message) => post({ type: 'error', message }),
        jitFlushed: tidy,
        nowMs: () => performance.now() - t0,
    };
    let created;
    if (rewind) {
      created = VirtMachine.restore(new Uint8Array(wasm), { ...machineConfig, kernel: undefined, initrd: undefined, bios: undefined }, machineHost, rewind.state, (core) => {
        rewind.loadRam(core.ram);
        return { ok: true };
      });
      // A checkpoint of this very run that does not restore is a bug, not a guest's doing.
      if (!created.ok) throw new Error(`rewinding to a checkpoint failed: ${created.error}`);
    } else if (migrateIn) {
      const started = performance.now();
      try {
        created = VirtMachine.restore(coreSource(machineConfig.ramSize), { ...machineConfig, kernel: undefined, initrd: undefined, bios: undefined }, machineHost, () => incomingState, (core) => {
          receiveIncoming(core);
          return { ok: true };
        });
      } catch (e) {
        created = { ok: false as const, error: e instanceof Error ? e.message : String(e) };
      }
      if (created.ok) {
        if (!config.deterministic) t0 = performance.now() - Number(created.machine.core.exports.getTime()) / Number(TICKS_PER_MS);
        // Switches learn where the guest is now: it announces itself (or its links blip).
        created.machine.announceNics();
        restoredIn = { ms: performance.now() - started, memory: 'read' };
      }
    } else if (from) {
      // performance.now() counts from this thread's start.
      const started = performance.now();
      const marks = [started];
      let how: 'mapped' | 'read' = 'read';
      try {
        const snap = readSnapshot(from);
        marks.push(performance.now());
        created = VirtMachine.restore(coreSource(machineConfig.ramSize), { ...machineConfig, kernel: undefined, initrd: undefined, bios: undefined }, machineHost, snap.machine, (core) => {
          marks.push(performance.now());
          how = loadSnapshotMemory(from, core.ram);
          marks.push(performance.now());
          return { ok: true };
        });
      } catch (e) {
        created = { ok: false as const, error: e instanceof Error ? e.message : String(e) };
      }
      if (created.ok) {
        // Guest time (and the device clock) go on from where they were, as after a pause.
        if (!config.deterministic) t0 = performance.now() - Number(created.machine.core.exports.getTime()) / Number(TICKS_PER_MS);
        const done = performance.now();
        const [, read, built, loaded] = marks;
        restoredIn = {
          ms: done - started, memory: how,
          split: { warm: handedOverAt > 0, preparedCore: usedPreparedCore, readState: read - started, buildMachine: built - read, loadMemory: loaded - built, restoreState: done - loaded },
        };
        if (config.clone) {
          // Always real randomness, also in deterministic runs: clones of one
          // snapshot must differ from each other, that is the point of a clone.
          created.machine.newGeneration(randomFillSync(new Uint8Array(16)));
          created.machine.bounceLinks();
        }
      }
    } else {
      created = VirtMachine.create(coreSource(machineConfig.ramSize), machineConfig, machineHost);
    }
    if (!created.ok) {
      post({ type: 'error', message: created.error });
      post({ type: 'exit', code: 1, reason: created.error });
      closeDisks();
      return null;
    }
    // A fresh boot starts its translator warm from what earlier boots of this guest translated.
    if (!from && !rewind && !migrateIn && config.jit !== false && (config.cpus ?? 1) === 1 && jitCacheWanted(config.jitCache)) {
      jitCache = startJitCache(created.machine, jitCacheDir(), config, translatorBuildId(config.wasmPath, { stats: config.stats === true, harts: 1 }));
    }
    // Deterministic runs arm it at once: nothing may depend on host time there.
    if (from && !config.deterministic) panicWatchPending = true;
    else {
      const vas = panicVas();
      if (vas.length) created.machine.watchPanic(...vas);
    }
    // The host terminal keeps its size across a guest reboot.
    if (consoleSize) created.machine.setConsoleSize(consoleSize.cols, consoleSize.rows);
    // A restored or incoming guest has booted already; a fresh one has once it first idles.
    tierBudget = new TierBudget();
    tierBudget.booted = from !== undefined || rewind !== undefined || migrateIn;
    created.machine.core.jit.compileWith = tierBudget.compileWith;
    if (process.env.TSVISOR_JIT_DUMP) created.machine.core.jit.onModule = jitDumper(process.env.TSVISOR_JIT_DUMP);
    created.machine.core.jit.regions = jitRegionsFromEnv();
    return created.machine;
  };
  let restoredIn: { ms: number; memory: 'mapped' | 'read'; split?: RestoreSplit } | null = null;
  let jitCache: JitCacheRun | null = null;
  let consoleSize = validConsoleSize(config.consoleSize);
  /** The boot watch is satisfied (or off); a restored or migrated machine came up long ago. */
  let cameUp = !config.bootWatchInsns || config.restore !== undefined || config.incoming !== undefined;
  /**
   * Destination: take pages and then the device state from the owner (commands
   * on the port) until the state arrives. Blocks the worker, which has no guest
   * to run yet; a stop request ends it.
   */
  function receiveIncoming(core: { ram: Uint8Array }): void {
    const st: CommandState = {
      machine: null as unknown as VirtMachine, disks: [], balloon: null,
      migration: (cmd) => {
        if (cmd.type === 'migrateLoad') {
          applyPages(core.ram, cmd.indexes, cmd.offsets, cmd.data);
          return null;
        }
        if (cmd.type === 'migrateState') {
          if (incomingState !== null) throw new Error('the device state arrived twice');
          incomingState = cmd.machine;
          return null;
        }
        // The owner sends it once the state is acknowledged, which may be while this
        // loop is still draining the port: remember it for the wait below.
        if (cmd.type === 'migrateStart' && incomingState !== null) {
          startRequested = true;
          return null;
        }
        throw new Error(`${cmd.type}: not while memory is arriving`);
      },
    };
    while (incomingState === null) {
      const seen = Atomics.load(control.ctrl, CTRL_WAKE);
      if (drainCommands(commands, st) > 0) continue;
      if (Atomics.load(control.ctrl, CTRL_STOP)) throw new Error('the migration was abandoned');
      Atomics.wait(control.ctrl, CTRL_WAKE, seen, 1000);
    }
  }
  let m = boot();
  const t0Restored = performance.now();
  if (!m) return;
  // A restored guest's first commands run interpreted (see Jit.hold): translation starts a moment later
  // (host time; not in deterministic runs, which time nothing by the host).
  let jitHeldUntil = config.restore !== undefined && !config.deterministic && config.jit !== false ? t0Restored + JIT_HOLD_AFTER_RESTORE_MS : 0;
  if (jitHeldUntil) m.core.jit.hold = true;
  if (config.incoming) {
    // Wait for the word to start (the owner took the image locks), then open the images.
    let go = startRequested;
    const st: CommandState = {
      machine: m, disks: [], balloon: null,
      migration: (cmd) => {
        if (cmd.type !== 'migrateStart') throw new Error(`${cmd.type}: not while waiting to start`);
        go = true;
        return null;
      },
    };
    while (!go) {
      const seen = Atomics.load(control.ctrl, CTRL_WAKE);
      if (drainCommands(commands, st) > 0) continue;
      if (Atomics.load(control.ctrl, CTRL_STOP)) {
        post({ type: 'exit', code: 0, reason: 'the migration was abandoned' });
        return;
      }
      Atomics.wait(control.ctrl, CTRL_WAKE, seen, 1000);
    }
    const started = performance.now();
    await openDisks();
    if (!config.deterministic) t0 = performance.now() - Number(m.core.exports.getTime()) / Number(TICKS_PER_MS);
    post({ type: 'migrated', ms: performance.now() - started });
  } else if (restoredIn) post({ type: 'restored', ...(restoredIn as { ms: number; memory: 'mapped' | 'read'; split?: RestoreSplit }) });
  // The boot images are in guest RAM now; their buffers (a Debian kernel is about
  // 30 MiB) would otherwise stay until some later collection, which a busy worker
  // that allocates little may never reach. A restored or migrated machine read no
  // boot images: its collection waits a moment, off the way to the guest's first slice.
  let tidyPending = config.restore !== undefined || config.incoming !== undefined;
  if (!tidyPending) tidy();
  /** Flush the disks and write the running machine into `dir` (between slices). */
  const takeSnapshot = (dir: string, overlays?: (string | null)[]): SnapshotResult => {
    const started = performance.now();
    for (const d of disks) if (!d.readOnly) d.flush();
    const frozen = overlays?.some((o) => o) ? prepareOverlays(overlays, disks, config.disks!) : null;
    const machine = m!.saveState();
    const snapConfig: SnapshotConfig = {
      kernel: config.kernel, initrd: config.initrd, append: config.append, memMiB: config.memMiB, bios: config.bios,
      deterministic: config.deterministic, jit: config.jit, rng: config.rng, virtioConsole: config.virtioConsole,
      ...(config.cpus !== undefined && config.cpus !== 1 ? { cpus: config.cpus } : {}),
      powerButton: config.powerButton ?? true,
      disks: config.disks?.map((d, i) => ({ ...d, limits: diskConfigs[i].limits })),
      balloon: balloon ? { ...balloon } : undefined,
      name: config.name, nicSpecs: config.nicSpecs,
      systemMap: config.systemMap, stallTimeoutMs: config.stallTimeoutMs,
    };
    const instret = Number(m!.core.instret);
    let dataPages;
    try {
      ({ dataPages } = writeSnapshot(dir, { instret, config: snapConfig, machine }, m!.core.ram));
    } catch (e) {
      frozen?.abandon();
      throw e;
    }
    const switched = frozen?.commit();
    return { dir, instret, dataPages, ms: performance.now() - started, ...(switched ? { overlays: switched } : {}) };
  };
  // Deterministic hooks keyed to instruction counts (see VmConfig.snapshotAt, inputScript).
  let snapAt = config.snapshotAt ?? null;
  const script = (config.inputScript ?? []).filter((e) => BigInt(e.instret) >= m!.core.instret);
  const future = (instret: number) => {
    if (!config.deterministic) throw new Error('instruction-count hooks need a deterministic VM');
    if (BigInt(instret) <= m!.core.instret) throw new Error(`instruction ${instret} has passed (now ${m!.core.instret})`);
  };
  const cmdState: CommandState = {
    machine: m, disks: diskConfigs, balloon, snapshot: takeSnapshot,
    reset: () => {
      rebootRequested = true;
    },
    consoleSize: consoleSize ?? undefined,
    scheduleSnapshot: (dir, instret) => {
      future(instret);
      snapAt = { dir, instret };
    },
    scheduleInput: (events) => {
      for (const e of events) future(e.instret);
      script.push(...events);
      script.sort((a, b) => a.instret - b.instret);
    },
    migration: (cmd) => sourceCommand(cmd),
  };
  /** Source side of a live migration (see SourceMigration), null when none runs. */
  let mig = null as SourceMigration | null;
  /** --copy-storage: the disks' blocks to send, null when the storage is shared. */
  let diskCopy = null as DiskCopy | null;
  /** Host time the guest still owes to a migration's CPU throttle (ms). */
  let throttleDebtMs = 0;
  /** The disks are to be reopened before the guest runs again (a failed migration). */
  let reopenDisks = false;
  const sourceCommand = (cmd: Extract<VmCommand, { type: `migrate${string}` }>): unknown => {
    if (cmd.type === 'migrateBegin') {
      if (mig) throw new Error('a migration is already running');
      mig = new SourceMigration(m!.core);
      diskCopy = cmd.copyStorage === true ? new DiskCopy(disks) : null;
      return { pages: mig.left, blocks: diskCopy?.left ?? 0 };
    }
    if (!mig) throw new Error(`${cmd.type}: no migration is running`);
    switch (cmd.type) {
      case 'migrateTake': {
        if (!Number.isInteger(cmd.max) || cmd.max < 1 || cmd.max > 16384) throw new Error('migrateTake: max must be 1..16384');
        const out = mig.take(cmd.max);
        // Counting the dirty map is a scan of it: only once the round's queue is empty.
        return { ...out, dirty: out.pages === 0 ? mig.dirtyNow() : -1 };
      }
      case 'migrateDiskTake': {
        if (!diskCopy) throw new Error('migrateDiskTake: the migration does not copy storage');
        if (!Number.isInteger(cmd.max) || cmd.max < 1 || cmd.max > 1024) throw new Error('migrateDiskTake: max must be 1..1024');
        const out = diskCopy.take(cmd.max);
        return { ...out, dirty: out.blocks === 0 ? diskCopy.dirtyNow() : -1 };
      }
      case 'migrateNextRound':
        return { pages: mig.nextRound(), blocks: diskCopy?.nextRound() ?? 0 };
      case 'migrateThrottle':
        if (!Number.isInteger(cmd.percent) || cmd.percent < 0 || cmd.percent > 99) throw new Error('migrateThrottle: percent must be 0..99');
        mig.throttle = cmd.percent;
        return null;
      case 'migrateHold': {
        // The disks are flushed once, when they are released before COMMIT (one fsync less of downtime).
        mig.hold = true;
        const pages = mig.nextRound();
        const blocks = diskCopy?.nextRound() ?? 0;
        // On the wall clock (threads have their own performance.now() origins): the downtime starts here, not when the owner asked.
        const stoppedAt = performance.timeOrigin + performance.now();
        const state = { pages, blocks, machine: m!.saveState(), instret: Number(m!.core.instret), stoppedAt };
        if (cmd.max === undefined) return state;
        if (!Number.isInteger(cmd.max) || cmd.max < 1 || cmd.max > 16384) throw new Error('migrateHold: max must be 1..16384');
        const first = mig.take(cmd.max);
        return { ...state, frames: first.frames, taken: first.pages, left: first.left };
      }
      case 'migrateReleaseDisks':
        if (!mig.hold) throw new Error('migrateReleaseDisks: the guest is not held');
        for (const d of disks) d.release();
        return null;
      case 'migrateResume':
        reopenDisks = true;
        mig = null;
        diskCopy?.end();
        diskCopy = null;
        return null;
      default:
        throw new Error(`${cmd.type}: not on the source of a migration`);
    }
  };
  const hostTicks = () => BigInt(Math.floor((performance.now() - t0) * 10_000));
  const ctrl = control.ctrl;

  /** --stats: the pc at each slice's end (each hart thread's last safe point), by instructions. */
  const pcSamples = config.stats ? new PcSamples() : null;
  let textSymbols: TextSymbols | null | undefined;
  const hotSpots = (): string => {
    if (!pcSamples) return '';
    if (textSymbols === undefined) {
      textSymbols = null;
      try {
        if (config.systemMap && statSync(config.systemMap).size <= MAX_SYSTEM_MAP_BYTES) textSymbols = new TextSymbols(readFileSync(config.systemMap, 'latin1'));
      } catch {
        // no names: pcs are shown as user or unknown
      }
    }
    const syms = textSymbols;
    return `  guest hot spots      ${pcSamples.top((pc) => syms?.name(pc) ?? null, 12)} (pc at slice ends, by instructions${syms ? '' : '; no System.map'})\n`;
  };
  let statsSeen = 0;
  /** Slices run and idle sleeps so far (--stats: where an idle VM's host time goes). */
  const loop: LoopStats = { slices: 0, sleeps: 0, busyMs: 0 };
  const report = () => {
    loop.busyMs = busyUs / 1000;
    // Where the hart threads are before the report parks them (a hang shows here).
    const where = hartThreads && !hartThreads.parked ? hartThreads.describe() : '';
    post({ type: 'stats', text: where + quiesced(() => statsReport(m!, performance.now() - t0, config.jit !== false, config.stats === true, loop)) + hotSpots() });
  };
  const live = control.live;
  let busyUs = 0;
  // Instructions of machines that a guest reboot replaced, so the live count never goes back.
  let instretBase = 0n;
  let jitBase = 0n;
  // Host memory housekeeping, about once a second (see housekeeping()).
  let housekeptAt = -Infinity;
  let idleSince = performance.now();
  let instretAtCheck = 0n;
  /** A slice ended in WFI since the last housekeeping. */
  let sawWfi = false;
  let checkedAt = performance.now();
  let trimmedAt = performance.now();
  let modulesAtTrim = 0;
  /** The translations were dropped in the current idle period. */
  let droppedThisIdle = false;
  /** The translator's module count at the last idle collection. */
  let modulesAtTidy = -1;
  const housekeeping = (now: number) => {
    // An idle VM (waiting in WFI, under IDLE_MIPS guest instructions per second,
    // for IDLE_DROP_MS) drops its translations: mostly boot code, they hold tens
    // of MiB that an idle VM should not keep. Counted in guest instructions, not
    // host time, so a loaded host does not make an idle guest look busy. (An idle
    // guest under the daemon's scheduler also spends moments throttled: only a
    // WFI in each interval counts, whatever the state in between.)
    const instret = instretBase + m!.core.instret;
    const busy = Number(instret - instretAtCheck) > IDLE_MIPS * 1e6 * Math.max(0.001, (now - checkedAt) / 1000);
    if (busy || !sawWfi) {
      idleSince = now;
      droppedThisIdle = false;
    }
    // Idle: translate only full batches (see Jit.idle); a busy second ends it.
    const idle = !busy && sawWfi;
    m!.core.jit.idle = idle;
    hartThreads?.setJitIdle(idle);
    sawWfi = false;
    instretAtCheck = instret;
    checkedAt = now;
    if (tidyPending && now - t0Restored >= PANIC_WATCH_DELAY_MS) {
      tidyPending = false;
      tidy();
    }
    if (panicWatchPending && now - t0Restored >= PANIC_WATCH_DELAY_MS) {
      panicWatchPending = false;
      const vas = panicVas();
      if (vas.length) {
        // The device thread's core shares hart 0's area, which it may touch (the
        // breakpoint's TLB flush) only while the harts are parked.
        quiesced(() => m!.watchPanic(...vas));
        // Hart threads started without it: the watch reaches each at its next safe point.
        hartThreads?.watchPanic(vas);
      } else if (config.stallTimeoutMs === undefined) stall = new StallWatch(DEFAULT_STALL_TIMEOUT_MS);
    }
    const jit = m!.core.jit;
    // Once per idle period: the idle loop itself (timer interrupts, the idle task)
    // soon needs translations again, and dropping those every IDLE_DROP_MS kept an
    // idle VM retranslating, collecting and trimming for ever.
    // With hart threads the translations are the harts' (the device thread's core runs
    // nothing): each hart drops its own at its next safe point.
    const modulesLive = hartThreads ? hartThreads.jitModules() : jit.modulesLive;
    if (!droppedThisIdle && now - idleSince >= IDLE_DROP_MS && modulesLive >= IDLE_DROP_MODULES) {
      if (hartThreads) hartThreads.dropTranslations();
      else jit.dropAll(); // its flush hook collects garbage and trims the C heap
      droppedThisIdle = true;
      idleSince = now;
    }
    // V8 collects its old generation when the heap reaches a growing limit, or in
    // idle-time and memory-reducer tasks on the thread's event loop, which this
    // thread never returns to while the guest runs. So what the translator left
    // since the last collection (dead modules, the translator's garbage, freed
    // compiler memory in the C heap) stayed: 47 MiB of V8 heap instead of 12 in
    // about one idle run in three. An idle guest that translated since collects.
    if (idle && jit.stats.modules !== modulesAtTidy && now - tidiedAt >= IDLE_TIDY_MS) {
      modulesAtTidy = jit.stats.modules;
      tidy();
    }
    if (!hostMem) return;
    Atomics.store(live, LIVE_RAM_RESIDENT, BigInt(hostMem.resident(m!.core.ram)));
    // Translating leaves freed compiler memory in the C heap: give it back
    // every few seconds while new code is being translated.
    if (jit.stats.modules !== modulesAtTrim && now - trimmedAt >= 5000) {
      modulesAtTrim = jit.stats.modules;
      trimmedAt = now;
      hostMem.trim();
    }
  };
  let devicesPublishedAt = -Infinity;
  const hartStats = new HartStatsPublisher(control.harts);
  // Parallel harts (phase 2): deterministic runs, the debugger and firmware keep phase 1.
  const threaded = runsHartThreads(config);
  /** Busy time of hart threads that a guest reboot ended (us). */
  let threadBusyBase = 0;
  const startThreads = () => {
    if (!threaded) return;
    hartThreads = new HartThreads(m!, {
      wasmPath: config.wasmPath, jit: config.jit !== false, panicVas: panicWatchPending ? [] : (panicVasFound ?? []),
      originMs: performance.timeOrigin + t0, doorbell: { words: ctrl, index: CTRL_WAKE },
    });
  };
  const quiesced = <T>(fn: () => T): T => (hartThreads ? hartThreads.quiesced(fn) : fn());
  cmdState.snapshot = (dir, overlays) => quiesced(() => takeSnapshot(dir, overlays));
  cmdState.migration = (cmd) => quiesced(() => sourceCommand(cmd));
  const publish = (state: number) => {
    Atomics.store(live, LIVE_INSTRET, instretBase + m!.core.instret);
    Atomics.store(live, LIVE_JIT_INSTRET, jitBase + m!.core.exports.getJitInstructions());
    Atomics.store(live, LIVE_BUSY_US, BigInt(Math.round(busyUs)));
    Atomics.store(live, LIVE_HEARTBEAT_MS, BigInt(Date.now()));
    Atomics.store(live, LIVE_STATE, BigInt(state));
    const now = performance.now();
    if (now - devicesPublishedAt >= DEVICE_STATS_PUBLISH_MS) {
      devicesPublishedAt = now;
      publishDeviceStats(control.devices, m!.deviceStats());
      hartStats.publish(hartThreads && !hartThreads.parked ? hartThreads.report() : m!.harts.report());
    }
    if (now - housekeptAt >= 1000) {
      housekeptAt = now;
      housekeeping(now);
    }
  };
  /** Sleep until the owner changes something (input, stop, pause, credit) or `ms` pass. */
  const sleep = (ms: number) => {
    const seen = Atomics.load(ctrl, CTRL_WAKE);
    Atomics.wait(ctrl, CTRL_WAKE, seen, ms);
  };
  // Fault injection for the daemon's isolation tests (accepted only with serve --debug-faults).
  const dbg = config.debug ?? {};
  const at = (ms: number | undefined) => (ms === undefined ? Infinity : performance.now() + ms);
  const failAt = at(dbg.failAfterMs);
  const hangAt = at(dbg.hangAfterMs);
  const oomAt = at(dbg.oomAfterMs);
  const gdb = gdbPort && config.gdb ? new GdbSession(gdbPort, {
    machine: () => m!,
    control,
    deterministic: config.deterministic,
    jit: config.jit !== false,
    rebuild: (state, loadRam) => {
      rewindTo = { state, loadRam };
      m = boot()!;
      cmdState.machine = m;
      return m;
    },
    muteConsole: (on) => {
      muted = on;
    },
    idle: () => publish(RUN_STATE_PAUSED),
  }, config.gdb) : null;
  // The counts a restore or an incoming migration brought are visible at once:
  // hart threads take a while to start, and the owner may read the statistics
  // before their first slice ends (it then saw 0 instructions after a migration).
  publish(RUN_STATE_RUNNING);
  startThreads();
  for (;;) {
    const now = performance.now();
    if (now >= failAt) throw new Error('injected fault (debug.failAfterMs)');
    if (now >= hangAt) for (;;); // never reports again: the owner's watchdog must notice
    if (now >= oomAt) {
      const hog: number[][] = [];
      for (;;) hog.push(new Array(1 << 20).fill(hog.length));
    }
    if (jitHeldUntil && now >= jitHeldUntil) {
      jitHeldUntil = 0;
      m.core.jit.hold = false;
    }
    cmdState.machine = m;
    cmdState.afterCommand ??= () => publishDeviceStats(control.devices, cmdState.machine.deviceStats());
    // Read before the commands are drained: one posted after the drain then ends the pause's wait below at once.
    const wakeBeforeDrain = Atomics.load(ctrl, CTRL_WAKE);
    drainCommands(commands, cmdState);
    consoleSize = cmdState.consoleSize ?? null;
    if (snapAt && m.core.instret === BigInt(snapAt.instret)) {
      try {
        post({ type: 'snapshot', result: takeSnapshot(snapAt.dir) });
      } catch (e) {
        post({ type: 'error', message: `snapshot failed: ${e instanceof Error ? e.message : String(e)}` });
      }
      snapAt = null;
    }
    while (script.length && BigInt(script[0].instret) <= m.core.instret) {
      m.pushConsoleInput(new TextEncoder().encode(script.shift()!.data));
      gdb?.inputArrived();
    }
    const statsAsked = Atomics.load(ctrl, CTRL_STATS);
    if (statsAsked !== statsSeen) {
      statsSeen = statsAsked;
      report();
    }
    if (gdb?.service() === 'kill') {
      exit ??= { code: 0, reason: 'killed by the debugger' };
      break;
    }
    if (Atomics.load(ctrl, CTRL_STOP)) {
      exit ??= { code: 0, reason: 'stopped by the host' };
      break;
    }
    if (reopenDisks) {
      reopenDisks = false;
      await openDisks();
    }
    if (Atomics.load(ctrl, CTRL_PAUSE) || mig?.hold) {
      hartThreads?.park();
      publish(RUN_STATE_PAUSED);
      // A held migration's next command (its asks are prefetched) often comes between the drain and here.
      Atomics.wait(ctrl, CTRL_WAKE, wakeBeforeDrain, 1000);
      continue;
    }
    if (!mig) throttleDebtMs = 0;
    if (throttleDebtMs > 0) {
      // Auto-converge: the guest stays off the CPU until its debt is paid; commands are still served.
      const t = performance.now();
      hartThreads?.park();
      publish(RUN_STATE_THROTTLED);
      sleep(Math.min(throttleDebtMs, 100));
      throttleDebtMs -= performance.now() - t;
      continue;
    }
    // The host scheduler hands out instructions as credit; without credit the VM waits.
    const credit = Atomics.load(live, LIVE_CREDIT);
    let slice = nics.length ? NET_SLICE : SLICE;
    // Hart threads hold themselves to it (below): they are not parked for it.
    if (credit >= 0n && !hartThreads) {
      const left = credit - (instretBase + m.core.instret);
      if (left <= 0n) {
        publish(RUN_STATE_THROTTLED);
        sleep(100);
        continue;
      }
      if (left < BigInt(slice)) slice = Number(left);
    }
    if (config.deterministic) {
      // Slices end on a fixed grid of instruction counts and at scripted events, so a
      // run restored from a snapshot slices (and feeds input) exactly as the original.
      const now = m.core.instret;
      slice = Math.min(slice, SLICE - Number(now % BigInt(SLICE)));
      const marks = [snapAt?.instret, script[0]?.instret].filter((x): x is number => x !== undefined && BigInt(x) > now);
      for (const x of marks) slice = Math.min(slice, Number(BigInt(x) - now));
    }
    if (gdb) slice = gdb.limitSlice(slice);
    if (pendingInput(control) > 0) {
      m.pushConsoleInput(pullInput(control, 4096));
      gdb?.inputArrived();
    }
    // Taken before looking at the rings: a frame queued after this point wakes the idle wait below.
    const wakeSeen = Atomics.load(ctrl, CTRL_WAKE);
    if (nics.length) m.pollNics();
    if (!config.deterministic) m.setTime(hostTicks());
    const started = performance.now();
    let served = 0;
    let r: number;
    let outOfCredit = false;
    if (hartThreads) {
      hartThreads.resume();
      // The harts hold themselves to the credit, all together (HartBoard.setCreditLimit), and
      // ring this thread when they run out; it keeps serving their devices meanwhile.
      hartThreads.setCredit(credit >= 0n ? credit - instretBase : null);
      served = hartThreads.serve();
      r = hartThreads.allWaiting() ? EXIT_WFI : 0;
      outOfCredit = r !== EXIT_WFI && credit >= 0n && instretBase + m.core.instret >= credit;
    } else {
      const before = pcSamples ? m.core.instret : 0n;
      r = m.runSlice(slice);
      pcSamples?.add(m.core.pc, Number(m.core.instret - before));
    }
    if (pcSamples && hartThreads) hartThreads.samplePcs(pcSamples);
    loop.slices++;
    const ran = performance.now() - started;
    // With hart threads the VM's busy time is theirs (the device thread's share is small).
    if (hartThreads) busyUs = threadBusyBase + hartThreads.busyUs();
    else busyUs += ran * 1000;
    // Auto-converge: off the CPU for `throttle` percent of the time, so the guest dirties memory slower.
    if (mig && mig.throttle > 0) throttleDebtMs += (ran * mig.throttle) / (100 - mig.throttle);
    for (const n of nics) n.flush();
    gdb?.afterSlice(r);
    if (r === EXIT_WFI) {
      sawWfi = true;
      if (tierBudget.idled()) m!.core.jit.dropAll();
      wfiSinceStallCheck = true;
    }
    // With several harts one of them idling shows the kernel is alive too (the others may stay busy).
    const wfisNow = hartThreads ? hartThreads.wfis() : m.harts.stats.wfis;
    if (wfisNow !== wfisSeen) {
      wfisSeen = wfisNow;
      wfiSinceStallCheck = true;
    }
    publish(r === EXIT_WFI ? RUN_STATE_IDLE : outOfCredit ? RUN_STATE_THROTTLED : RUN_STATE_RUNNING);
    if (m.panicked && panicAt === null) panicAt = m.core.instret;
    if (!cameUp) {
      cameUp = r === EXIT_WFI || m.core.interruptsTaken() > 0n || m.core.trapsFromUser() > 0n || (hartThreads !== null && (wfisNow > 0 || hartThreads.interrupts() > 0n));
      if (!cameUp && m.core.instret >= BigInt(config.bootWatchInsns!)) exit ??= neverCameUp(config.bootWatchInsns!);
    }
    if (panicAt !== null && m.core.instret - panicAt >= PANIC_GRACE_INSNS) exit ??= PANIC_EXIT;
    const nowMs = performance.now();
    if (nowMs - stallCheckedAt >= 1000) {
      const why = stall.update(m.core.trapsFromUser(), m.core.interruptsTaken(), instretBase + m.core.instret, wfiSinceStallCheck, (busyUs - busyAtStallCheck) / 1000);
      stallCheckedAt = nowMs;
      busyAtStallCheck = busyUs;
      wfiSinceStallCheck = false;
      if (why) exit ??= panicAt !== null ? PANIC_EXIT : { code: 1, reason: why };
    }
    if (exit) break;
    if (rebootRequested) {
      // A guest reboot is a fresh machine from the same images, as on real hardware.
      rebootRequested = false;
      if (hartThreads) {
        hartThreads.stop();
        threadBusyBase = busyUs;
        hartThreads = null;
      }
      hartStats.carry(m.harts.report());
      instretBase += m.core.instret;
      jitBase += m.core.exports.getJitInstructions();
      const next = boot();
      if (!next) return;
      m = next;
      gdb?.machineReplaced();
      Atomics.add(live, LIVE_BOOTS, 1n);
      cameUp = !config.bootWatchInsns;
      tidy();
      startThreads();
      continue;
    }
    if (hartThreads) {
      // The harts run on their own threads: sleep until one of them (or the owner, or a NIC) rings, or a device deadline.
      if (served === 0 && pendingInput(control) === 0 && !m.hasPendingInput()) {
        const ms = Math.min(r === EXIT_WFI ? THREADS_IDLE_WAIT_MS : THREADS_WAIT_MS, Math.ceil(m.msToDeviceDeadline()));
        if (ms > 0) {
          if (r === EXIT_WFI) loop.sleeps++;
          Atomics.wait(ctrl, CTRL_WAKE, wakeSeen, ms);
        }
      }
      continue;
    }
    if (r === EXIT_WFI) {
      if (config.deterministic) {
        // Guest time jumps to the next deadline. Pace the jump with the host clock so an
        // idle guest does not spin a host core; the pacing is invisible to the guest.
        if (m.hasPendingInput() || pendingInput(control) > 0) continue;
        const wait = m.idleTicksUntilDeadline();
        const ms = wait === null ? 1000 : Math.min(1000, Number(wait / TICKS_PER_MS));
        if (nics.length && m.pollNics()) continue; // a frame arrived during the slice
        if (ms >= 1 && pendingInput(control) === 0) Atomics.wait(ctrl, CTRL_WAKE, wakeSeen, ms);
        if (pendingInput(control) > 0 || Atomics.load(ctrl, CTRL_STOP)) continue;
        if (nics.length && m.pollNics()) continue; // woken by a frame: handle it before time jumps
        m.skipToNextDeadline();
        continue;
      }
      if (nics.length && m.pollNics()) continue;
      const deadline = m.nextTimerDeadline();
      const now = hostTicks();
      if (deadline > now) {
        const ms = deadline === 0xffffffffffffffffn ? 1000 : Number((deadline - now) / TICKS_PER_MS) + 1;
        if (pendingInput(control) === 0 && !m.hasPendingInput()) {
          loop.sleeps++;
          Atomics.wait(ctrl, CTRL_WAKE, wakeSeen, Math.min(ms, 1000));
        }
      }
    }
  }
  hartThreads?.stop();
  hartThreads = null;
  publish(RUN_STATE_EXITED);
  hartStats.publish(m.harts.report());
  gdb?.exited(exit.code);
  const problem = closeDisks();
  if (problem) post({ type: 'error', message: problem });
  // Assigned inside boot(): TypeScript cannot see it.
  const cache = jitCache as JitCacheRun | null;
  if (cache) cache.warm.note = cache.save() ?? cache.warm.note;
  if (config.stats) report();
  post({ type: 'exit', code: exit.code, reason: exit.reason });
}

try {
  await main();
} catch (e) {
  try {
    (hartThreads as HartThreads | null)?.stop();
  } catch {
    // the threads are ended with the worker anyway
  }
  closeDisks();
  const message = e instanceof Error ? e.message : String(e);
  const disk = e instanceof Error && e.name === 'DiskError';
  post({ type: 'error', message: disk ? message : `emulator failure: ${message}` });
  post({ type: 'exit', code: 1, reason: disk ? message : `emulator failure: ${message}` });
}
