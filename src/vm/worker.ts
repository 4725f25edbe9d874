// The worker thread that runs one VM. It never returns to its event loop while
// the guest runs: control (input, stop) arrives through the shared control
// block, output leaves by postMessage. An idle guest sleeps in Atomics.wait
// until its next timer deadline or new input.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { readFileSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  CTRL_PAUSE, CTRL_STATS, CTRL_STOP, CTRL_WAKE, LIVE_BUSY_US, LIVE_CREDIT, LIVE_HEARTBEAT_MS, LIVE_INSTRET,
  LIVE_JIT_INSTRET, LIVE_RAM_RESIDENT, LIVE_STATE, RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, RUN_STATE_RUNNING,
  RUN_STATE_THROTTLED, pendingInput, pullInput, type SharedControl, type VmConfig, type WorkerMessage,
} from './protocol.js';
import { VirtMachine, EXIT_WFI, type MachineConfig, type MachineHost } from '../machine/virt.js';
import { MAX_SYSTEM_MAP_BYTES, panicSymbolsFor } from '../machine/kernel-symbols.js';
import { DEFAULT_STALL_TIMEOUT_MS, StallWatch } from './stall-watch.js';
import { TIMEBASE_HZ } from '../machine/layout.js';
import { statsReport } from './stats.js';
import { DEVICE_STATS_PUBLISH_MS, publishDeviceStats } from './device-stats-block.js';
import type { BlockBackend } from '../storage/backend.js';
import { openDisk } from '../storage/open.js';
import { workerNic, type NicChannelInit } from '../net/nic-channel.js';
import { setCountLookups } from '../jit/translate.js';
import { checkDeviceConfig, drainCommands, type CommandState } from './commands.js';
import { hostMemory } from './host-memory.js';
import { loadSnapshotMemory, readSnapshot, writeSnapshot, type SnapshotConfig } from './snapshot.js';
import type { SnapshotResult } from './protocol.js';
import { SwitchableDisk } from '../storage/switchable.js';
import { prepareOverlays } from './disk-freeze.js';

interface WorkerInit {
  config: VmConfig;
  control: SharedControl;
  /** Shared rings and counters of each NIC (the backends live on the owner's thread or a NIC I/O thread). */
  nics?: NicChannelInit[];
  /** Command port (see commands.ts); absent when the owner does not use commands. */
  commands?: MessagePort;
}

const SLICE = 2_000_000; // instructions per call into the core
/** A restored VM arms its kernel-panic watch this long after it runs again (ms). */
const PANIC_WATCH_DELAY_MS = 1000;
/** An idle guest drops its translations after this long (see housekeeping()), if it holds at least IDLE_DROP_MODULES. */
const IDLE_DROP_MS = 10_000;
/** Below this many million guest instructions per second (and waiting in WFI) a guest counts as idle. */
const IDLE_MIPS = 5;
const IDLE_DROP_MODULES = 32;
/** With a NIC, received frames wait for the end of a slice: shorter slices keep network latency low. */
const NET_SLICE = 200_000;
const TICKS_PER_MS = BigInt(TIMEBASE_HZ / 1000);
/** After panic() is entered, the kernel runs this many more instructions to print its message, then the VM ends. */
const PANIC_GRACE_INSNS = 200_000_000n;
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
const collectGarbage: (() => void) | undefined = (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();

// V8 moves a wasm function from its baseline compiler (Liftoff) to TurboFan once
// it has run about this many bytes of code. The default (1.8 MB) sends thousands
// of lukewarm translated blocks to TurboFan during a boot, and on a small host
// that compile work delays the blocks that are really hot; measured on the
// default guest's boot, 20 MB was about 10% faster. Process-wide, set before
// the first module is compiled.
try {
  setFlagsFromString('--wasm-tiering-budget=20000000');
} catch {
  // an engine without the flag keeps its default
}

const disks: BlockBackend[] = [];

/** Flush and close every disk (at exit, also after an emulator failure). */
function closeDisks(): string | null {
  let problem: string | null = null;
  for (const d of disks.splice(0)) {
    try {
      if (!d.readOnly) d.flush();
      d.close();
    } catch (e) {
      problem ??= `closing a disk failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  return problem;
}

async function main(): Promise<void> {
  const { config, control, nics: nicChannels = [], commands } = workerData as WorkerInit;
  const nics = nicChannels.map(workerNic);
  // Translated code counts its TLB lookups only when statistics were asked for (it costs speed).
  setCountLookups(config.stats === true);
  const badDevice = checkDeviceConfig(config);
  if (badDevice) {
    post({ type: 'error', message: badDevice });
    post({ type: 'exit', code: 1, reason: badDevice });
    return;
  }
  for (const d of config.disks ?? []) {
    const backing = d.backingRoot !== undefined ? { root: d.backingRoot } : {};
    const backend = await openDisk(d.path, { format: d.format, readOnly: d.readOnly, backing, guardProbedRaw: d.guardProbedRaw });
    // Writable disks can be frozen at a snapshot (switched to a new overlay while running).
    disks.push(backend.readOnly ? backend : new SwitchableDisk(backend));
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

  /** Collect garbage and give the C heap's free memory back (after boot and after dropping translations). */
  const tidy = () => {
    collectGarbage?.();
    hostMem?.trim();
  };
  let exit: { code: number; reason: string } | null = null;
  let rebootRequested = false;
  /** instret at which the kernel entered panic(), or null. */
  let panicAt: bigint | null = null;
  const stall = new StallWatch(config.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
  let stallCheckedAt = 0;
  let busyAtStallCheck = 0;
  let wfiSinceStallCheck = false;
  /** Restore from config.restore on the first boot only (a later guest reboot boots the kernel). */
  let restoreFrom = config.restore;
  const boot = (): VirtMachine | null => {
    const from = restoreFrom;
    restoreFrom = undefined;
    const machineConfig: MachineConfig = {
        ramSize: config.memMiB * 1024 * 1024,
        // A restore needs no boot images: they are in the snapshot's RAM.
        kernel: from ? undefined : image(config.kernel),
        initrd: from ? undefined : image(config.initrd),
        bios: from ? undefined : image(config.bios),
        bootargs: config.append,
        deterministic: config.deterministic,
        jit: config.jit !== false,
        disks: diskConfigs,
        // A clone's NICs bring their own MACs (new identity), the snapshot's are not required.
        nics: from && config.clone ? nics.map((n) => ({ ...n, newMac: true })) : nics,
        rng: config.rng ?? false,
        virtioConsole: config.virtioConsole ?? true,
        balloon: balloon ? { ...balloon, release: hostMem?.release } : undefined,
    };
    const machineHost: MachineHost = {
        consoleOut: (data) => post({ type: 'console', data }),
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
    if (from) {
      const started = performance.now();
      let how: 'mapped' | 'read' = 'read';
      try {
        const snap = readSnapshot(from);
        created = VirtMachine.restore(new Uint8Array(wasm), { ...machineConfig, kernel: undefined, initrd: undefined, bios: undefined }, machineHost, snap.machine, (core) => {
          how = loadSnapshotMemory(from, core.ram);
          return { ok: true };
        });
      } catch (e) {
        created = { ok: false as const, error: e instanceof Error ? e.message : String(e) };
      }
      if (created.ok) {
        // Guest time (and the device clock) go on from where they were, as after a pause.
        if (!config.deterministic) t0 = performance.now() - Number(created.machine.core.exports.getTime()) / Number(TICKS_PER_MS);
        restoredIn = { ms: performance.now() - started, memory: how };
        if (config.clone) {
          // Always real randomness, also in deterministic runs: clones of one
          // snapshot must differ from each other, that is the point of a clone.
          created.machine.newGeneration(randomFillSync(new Uint8Array(16)));
          created.machine.bounceLinks();
        }
      }
    } else {
      created = VirtMachine.create(new Uint8Array(wasm), machineConfig, machineHost);
    }
    if (!created.ok) {
      post({ type: 'error', message: created.error });
      post({ type: 'exit', code: 1, reason: created.error });
      closeDisks();
      return null;
    }
    // Deterministic runs arm it at once: nothing may depend on host time there.
    if (from && !config.deterministic) panicWatchPending = true;
    else {
      const vas = panicVas();
      if (vas.length) created.machine.watchPanic(...vas);
    }
    return created.machine;
  };
  let restoredIn: { ms: number; memory: 'mapped' | 'read' } | null = null;
  let m = boot();
  const t0Restored = performance.now();
  if (!m) return;
  if (restoredIn) post({ type: 'restored', ...(restoredIn as { ms: number; memory: 'mapped' | 'read' }) });
  // The boot images are in guest RAM now; their buffers (a Debian kernel is about
  // 30 MiB) would otherwise stay until some later collection, which a busy worker
  // that allocates little may never reach.
  tidy();
  /** Flush the disks and write the running machine into `dir` (between slices). */
  const takeSnapshot = (dir: string, overlays?: (string | null)[]): SnapshotResult => {
    const started = performance.now();
    for (const d of disks) if (!d.readOnly) d.flush();
    const frozen = overlays?.some((o) => o) ? prepareOverlays(overlays, disks, config.disks!) : null;
    const machine = m!.saveState();
    const snapConfig: SnapshotConfig = {
      kernel: config.kernel, initrd: config.initrd, append: config.append, memMiB: config.memMiB, bios: config.bios,
      deterministic: config.deterministic, jit: config.jit, rng: config.rng, virtioConsole: config.virtioConsole,
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
    scheduleSnapshot: (dir, instret) => {
      future(instret);
      snapAt = { dir, instret };
    },
    scheduleInput: (events) => {
      for (const e of events) future(e.instret);
      script.push(...events);
      script.sort((a, b) => a.instret - b.instret);
    },
  };
  const hostTicks = () => BigInt(Math.floor((performance.now() - t0) * 10_000));
  const ctrl = control.ctrl;

  let statsSeen = 0;
  const report = () => post({ type: 'stats', text: statsReport(m!, performance.now() - t0, config.jit !== false, config.stats === true) });
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
  const housekeeping = (now: number) => {
    // An idle VM (waiting in WFI, under IDLE_MIPS guest instructions per second,
    // for IDLE_DROP_MS) drops its translations: mostly boot code, they hold tens
    // of MiB that an idle VM should not keep. Counted in guest instructions, not
    // host time, so a loaded host does not make an idle guest look busy. (An idle
    // guest under the daemon's scheduler also spends moments throttled: only a
    // WFI in each interval counts, whatever the state in between.)
    const instret = instretBase + m!.core.instret;
    const busy = Number(instret - instretAtCheck) > IDLE_MIPS * 1e6 * Math.max(0.001, (now - checkedAt) / 1000);
    if (busy || !sawWfi) idleSince = now;
    sawWfi = false;
    instretAtCheck = instret;
    checkedAt = now;
    if (panicWatchPending && now - t0Restored >= PANIC_WATCH_DELAY_MS) {
      panicWatchPending = false;
      const vas = panicVas();
      if (vas.length) m!.watchPanic(...vas);
    }
    const jit = m!.core.jit;
    if (now - idleSince >= IDLE_DROP_MS && jit.modulesLive >= IDLE_DROP_MODULES) {
      jit.dropAll(); // its flush hook collects garbage and trims the C heap
      idleSince = now;
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
  for (;;) {
    const now = performance.now();
    if (now >= failAt) throw new Error('injected fault (debug.failAfterMs)');
    if (now >= hangAt) for (;;); // never reports again: the owner's watchdog must notice
    if (now >= oomAt) {
      const hog: number[][] = [];
      for (;;) hog.push(new Array(1 << 20).fill(hog.length));
    }
    cmdState.machine = m;
    cmdState.afterCommand ??= () => publishDeviceStats(control.devices, cmdState.machine.deviceStats());
    drainCommands(commands, cmdState);
    if (snapAt && m.core.instret === BigInt(snapAt.instret)) {
      try {
        post({ type: 'snapshot', result: takeSnapshot(snapAt.dir) });
      } catch (e) {
        post({ type: 'error', message: `snapshot failed: ${e instanceof Error ? e.message : String(e)}` });
      }
      snapAt = null;
    }
    while (script.length && BigInt(script[0].instret) <= m.core.instret) m.pushConsoleInput(new TextEncoder().encode(script.shift()!.data));
    const statsAsked = Atomics.load(ctrl, CTRL_STATS);
    if (statsAsked !== statsSeen) {
      statsSeen = statsAsked;
      report();
    }
    if (Atomics.load(ctrl, CTRL_STOP)) {
      exit ??= { code: 0, reason: 'stopped by the host' };
      break;
    }
    if (Atomics.load(ctrl, CTRL_PAUSE)) {
      publish(RUN_STATE_PAUSED);
      sleep(1000);
      continue;
    }
    // The host scheduler hands out instructions as credit; without credit the VM waits.
    const credit = Atomics.load(live, LIVE_CREDIT);
    let slice = nics.length ? NET_SLICE : SLICE;
    if (credit >= 0n) {
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
    if (pendingInput(control) > 0) m.pushConsoleInput(pullInput(control, 4096));
    // Taken before looking at the rings: a frame queued after this point wakes the idle wait below.
    const wakeSeen = Atomics.load(ctrl, CTRL_WAKE);
    if (nics.length) m.pollNics();
    if (!config.deterministic) m.setTime(hostTicks());
    const started = performance.now();
    const r = m.runSlice(slice);
    busyUs += (performance.now() - started) * 1000;
    for (const n of nics) n.flush();
    if (r === EXIT_WFI) {
      sawWfi = true;
      wfiSinceStallCheck = true;
    }
    publish(r === EXIT_WFI ? RUN_STATE_IDLE : RUN_STATE_RUNNING);
    if (m.panicked && panicAt === null) panicAt = m.core.instret;
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
      instretBase += m.core.instret;
      jitBase += m.core.exports.getJitInstructions();
      const next = boot();
      if (!next) return;
      m = next;
      tidy();
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
        if (pendingInput(control) === 0 && !m.hasPendingInput()) Atomics.wait(ctrl, CTRL_WAKE, wakeSeen, Math.min(ms, 1000));
      }
    }
  }
  publish(RUN_STATE_EXITED);
  const problem = closeDisks();
  if (problem) post({ type: 'error', message: problem });
  if (config.stats) report();
  post({ type: 'exit', code: exit.code, reason: exit.reason });
}

try {
  await main();
} catch (e) {
  closeDisks();
  const message = e instanceof Error ? e.message : String(e);
  const disk = e instanceof Error && e.name === 'DiskError';
  post({ type: 'error', message: disk ? message : `emulator failure: ${message}` });
  post({ type: 'exit', code: 1, reason: disk ? message : `emulator failure: ${message}` });
}
