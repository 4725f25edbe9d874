// The message interface between a VM's worker thread and its owner (CLI or daemon).
// Control travels through a small SharedArrayBuffer so the worker, which never
// returns to its event loop while the guest runs, sees it between slices, and an
// idle worker sleeping in Atomics.wait wakes at once. Commands that carry data
// (limits, balloon target, device statistics) travel on a MessagePort that the
// worker polls with receiveMessageOnPort between slices (see VmCommand below).

import type { RateLimits } from '../devices/rate-limiter.js';
import type { NicLimits } from '../devices/virtio/net.js';
import type { MachineDeviceStats } from '../machine/virt.js';
import { createDeviceStatsBlock } from './device-stats-block.js';
import { createHartStatsBlock } from './hart-stats-block.js';

export type { RateLimits, BucketConfig } from '../devices/rate-limiter.js';
export type { MachineDeviceStats } from '../machine/virt.js';

/** What a VM is started with. Paths are host paths, already validated by the owner. */
export interface VmConfig {
  kernel: string;
  initrd?: string;
  append: string;
  memMiB: number;
  bios?: string;
  deterministic: boolean;
  /** Harts (virtual CPUs), 1..8; default 1. They run round-robin on the VM's thread (docs/smp.md). */
  cpus?: number;
  /**
   * With several harts: each runs on a host thread of its own (SMP phase 2,
   * docs/smp.md). Deterministic, --gdb and --bios VMs keep them on the VM's
   * one thread whatever this says (runsHartThreads). Unset here: off; the CLI
   * and the daemon set it, on unless asked otherwise.
   */
  hartThreads?: boolean;
  /** Path of the compiled CPU core (build/cpu.wasm). */
  wasmPath: string;
  /** Translate hot guest code to wasm (default true). */
  jit?: boolean;
  /** Use and update the translation cache kept between boots (src/vm/jit-cache.ts); unset: TSVISOR_JIT_CACHE decides (default off). */
  jitCache?: boolean;
  /** Send a statistics report before the exit message. */
  stats?: boolean;
  /** virtio-blk disks, in order (the first is /dev/vda). */
  disks?: VmDiskConfig[];
  /** virtio-rng fed from the host CSPRNG (default false: see --rng in the CLI help). */
  rng?: boolean;
  /** virtio-console as hvc0 on the same console stream as the UART (default true). */
  virtioConsole?: boolean;
  /** virtio-input with a power and a restart button (default true; snapshots taken before it existed have none). */
  powerButton?: boolean;
  /**
   * Boot watch: a booted (not restored) machine that retires this many
   * instructions without a sign of life (an interrupt taken, a trap from a
   * program, an idle WFI) ends with a failure: a kernel that stopped early,
   * such as one with too little memory, would otherwise spin forever. Omitted: off.
   */
  bootWatchInsns?: number;
  /** Initial size of the host terminal for hvc0 (see the consoleSize command). */
  consoleSize?: { cols: number; rows: number };
  /** Debug only (daemon --debug-faults): faults the worker injects this many ms after boot, to test isolation. */
  debug?: { failAfterMs?: number; hangAfterMs?: number; oomAfterMs?: number };
  /** virtio-balloon (default off): true, or settings. The target is changed with the setBalloonTarget command. */
  balloon?: VmBalloonConfig | boolean;
  /** The kernel's System.map: its panic() entry is watched, and a panic ends the VM with reason "kernel panic". */
  systemMap?: string;
  /** Fail a VM that runs this long (ms of running time) without taking an interrupt or idling in WFI; 0 = never. Default 60 s. */
  stallTimeoutMs?: number;
  /**
   * Restore from this snapshot directory instead of booting. The rest of the
   * config must be the snapshot's (see readSnapshot); a guest reboot later boots
   * its kernel as usual.
   */
  restore?: string;
  /**
   * With `restore`: this VM is a clone, one of possibly many copies of the snapshot.
   * It gets a new VM generation ID (the guest reseeds its RNG) and its links blip.
   */
  clone?: boolean;
  /** The VM's name and NIC specifications, not used by the worker: recorded in snapshots for the restore. */
  name?: string;
  nicSpecs?: unknown[];
  /**
   * Deterministic runs: take a snapshot into `dir` when the guest has retired
   * exactly `instret` instructions (the worker ends a slice there).
   */
  snapshotAt?: { instret: number; dir: string };
  /**
   * Console input delivered when the guest has retired exactly `instret`
   * instructions (slices end there), so a deterministic run fed this way is
   * reproducible, also across a snapshot and restore. Events are in order.
   */
  inputScript?: { instret: number; data: string }[];
  /**
   * A GDB remote stub on the gdb port (VmHandle's gdb channel; see
   * src/vm/gdb-session.ts). `wait`: stopped before the first instruction until
   * a debugger attaches and continues. `checkpointEvery`: in deterministic runs,
   * keep an in-memory checkpoint every this many instructions for reverse
   * execution (0: none; default DEFAULT_CHECKPOINT_EVERY).
   */
  gdb?: { wait?: boolean; checkpointEvery?: number; maxCheckpoints?: number };
  /**
   * Live migration destination: build the machine without booting, take guest
   * RAM and the device state from migrateLoad/migrateState commands, open the
   * disks at migrateStart (after the source released them) and run. The disk
   * sizes are the images' (checked by the owner) since they are opened last.
   */
  incoming?: { diskSizes: number[] };
}

/** Messages on the gdb channel: the owner sends connect/data/disconnect, the worker data. */
export type GdbPortMessage = { type: 'connect' } | { type: 'data'; data: Uint8Array } | { type: 'disconnect' };

export interface VmBalloonConfig {
  /** Initial target in MiB (default 0: the guest keeps all its RAM). */
  targetMiB?: number;
  /** How often the device asks the guest for memory statistics, ms of device clock (default 2000; 0 = never). */
  statsIntervalMs?: number;
}

export interface VmDiskConfig {
  path: string;
  /** The image's format; always given by the CLI and the daemon (guessing it from the file is unsafe, see docs/storage-qcow2.md). */
  format?: 'raw' | 'qcow2';
  readOnly?: boolean;
  /** qcow2 backing files must lie inside this directory (the daemon's images directory). */
  backingRoot?: string;
  /** The raw format was guessed: writes that would make the disk look like qcow2 fail. */
  guardProbedRaw?: boolean;
  serial?: string;
  /**
   * I/O rate limits, Firecracker-style token buckets: `bandwidth` in bytes and
   * `ops` in requests, each `{ size, refillMs, oneTimeBurst? }` (size tokens per
   * refillMs, the bucket starting full, plus a burst spent once). The command
   * line's bps=N,iops=N is `{ size: N, refillMs: 1000 }`. Omitted: unlimited.
   */
  limits?: RateLimits;
}

/**
 * Commands from the owner to a running worker, on the command port. Add new
 * kinds here and in src/vm/commands.ts; each is answered by one CommandReply
 * with the same id (`result` typed by CommandResult).
 */
export type VmCommand =
  /** Replace the limits of disk `disk` (index in VmConfig.disks); {} removes them. */
  | { type: 'setDiskLimits'; disk: number; limits: RateLimits }
  /** Set the balloon target in MiB (the guest gives that much RAM back). */
  | { type: 'setBalloonTarget'; mib: number }
  /** Replace the rate limits of NIC `nic` (0 = eth0); {} removes them. */
  | { type: 'setNicLimits'; nic: number; limits: NicLimits }
  /** Per-device counters: disks (bytes, ops, throttling) and the balloon. `refresh` also asks the guest for new memory statistics. */
  | { type: 'deviceStats'; refresh?: boolean }
  /**
   * Write a snapshot of the running VM into `dir` (new or empty), between two
   * slices; disks are flushed first. The VM goes on running.
   */
  | {
      type: 'snapshot';
      dir: string;
      /**
       * Freeze the disks: per disk, a new qcow2 overlay path (absent or null: leave
       * that disk). Each named disk is switched to its new overlay, backed by its
       * old image, right after the snapshot; the snapshot keeps the old one unchanged.
       */
      overlays?: (string | null)[];
    }
  /**
   * Deterministic runs: write a snapshot into `dir` when the guest has retired exactly
   * `instret` instructions (later than now); the 'snapshot' message reports it.
   */
  | { type: 'scheduleSnapshot'; dir: string; instret: number }
  /** Add console input at exact instruction counts (as VmConfig.inputScript; later than now). */
  | { type: 'scheduleInput'; events: { instret: number; data: string }[] }
  /**
   * Press a button (virtio-input): 'power' asks the guest to shut down,
   * 'restart' to reboot. Fails when the guest has no driver for the buttons.
   */
  | { type: 'pressButton'; button: 'power' | 'restart' }
  /** Reboot the machine at once (as the guest's own reboot does: a fresh machine from the same images). */
  | { type: 'reset' }
  /** The host terminal's size, for the guest's hvc0 (kept across guest reboots). */
  | { type: 'consoleSize'; cols: number; rows: number }
  // ---- live migration, source side (src/vm/migration/) ----
  /** Start the dirty log; round 0 queues every page that is not zero (and with copyStorage every disk block). */
  | { type: 'migrateBegin'; copyStorage?: boolean }
  /** --copy-storage: read up to `max` queued disk blocks as finished DISK frames; the reply with no blocks counts the round's dirty blocks (else -1). */
  | { type: 'migrateDiskTake'; max: number }
  /** Copy up to `max` queued pages out of guest RAM as finished PAGES frames; the reply with no pages counts the round's dirty pages (else dirty is -1). */
  | { type: 'migrateTake'; max: number }
  /** Queue the pages dirtied since the last round started. */
  | { type: 'migrateNextRound' }
  /** Keep the guest off the CPU this percent of the time (auto-converge), 0..99. */
  | { type: 'migrateThrottle'; percent: number }
  /** Stop the guest for the final pass: flush the disks, queue the last dirty pages, save the device state. */
  | { type: 'migrateHold'; max?: number }
  /** Flush and close the disk images (before the destination opens them). */
  | { type: 'migrateReleaseDisks' }
  /** The migration failed: reopen the disks and let the guest run again. */
  | { type: 'migrateResume' }
  // ---- live migration, destination side (VmConfig.incoming) ----
  /** Write received pages into guest RAM (`offsets[i]` into `data`, -1 = a zero page). */
  | { type: 'migrateLoad'; indexes: Uint32Array; offsets: Int32Array; data: Uint8Array }
  /** The device state: the machine is restored with it. */
  | { type: 'migrateState'; machine: unknown }
  /** Open the disks and run (a 'migrated' message follows, or an exit). */
  | { type: 'migrateStart' };

/** What a snapshot took. */
export interface SnapshotResult {
  dir: string;
  /** Guest instructions retired at the snapshot. */
  instret: number;
  /** Pages of guest RAM written (the rest are zero). */
  dataPages: number;
  /** Host time the VM was stopped for it. */
  ms: number;
  /** Disks switched to new overlays (the snapshot's `overlays`): the VM now writes these. */
  overlays?: { disk: number; path: string }[];
}

export interface CommandResults {
  setDiskLimits: null;
  setBalloonTarget: null;
  setNicLimits: null;
  deviceStats: MachineDeviceStats;
  snapshot: SnapshotResult;
  scheduleSnapshot: null;
  scheduleInput: null;
  pressButton: null;
  reset: null;
  consoleSize: null;
  migrateBegin: { pages: number; blocks: number };
  migrateDiskTake: { frames: Uint8Array; blocks: number; left: number; dirty: number };
  migrateTake: { frames: Uint8Array; pages: number; left: number; dirty: number };
  migrateNextRound: { pages: number; blocks: number };
  migrateThrottle: null;
  /** With `max`: the final round's first batch of pages (as migrateTake) comes along, one round trip less in the downtime. */
  migrateHold: { pages: number; blocks: number; machine: unknown; instret: number; stoppedAt: number; frames?: Uint8Array; taken?: number; left?: number };
  migrateReleaseDisks: null;
  migrateResume: null;
  migrateLoad: null;
  migrateState: null;
  migrateStart: null;
}
export type CommandResult<C extends VmCommand> = CommandResults[C['type']];

export interface CommandRequest {
  id: number;
  command: VmCommand;
}
export type CommandReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Int32 slots of the control block. */
export const CTRL_WAKE = 0; // bumped + notified on any input or request
export const CTRL_STOP = 1; // 1 = owner asks the VM to stop now
export const CTRL_IN_HEAD = 2; // console input ring: bytes written by owner (monotonic)
export const CTRL_IN_TAIL = 3; // bytes consumed by the worker (monotonic)
export const CTRL_STATS = 4; // bumped by the owner to ask for a statistics report
export const CTRL_PAUSE = 5; // 1 = owner asks the VM to pause (the worker sleeps until it is 0 again)
export const CTRL_SLOTS = 8;

/**
 * BigInt64 slots of the live counters block: the worker writes them after every
 * slice, the owner (daemon, scheduler, monitoring) reads them at any time without
 * a message round trip.
 */
export const LIVE_INSTRET = 0; // guest instructions retired since boot (worker)
export const LIVE_CREDIT = 1; // owner: the worker may run while instret < credit; -1 = no limit
export const LIVE_HEARTBEAT_MS = 2; // worker: wall clock (Date.now()) at the end of its last slice or wait
export const LIVE_BUSY_US = 3; // worker: microseconds spent running guest code (host CPU time used)
export const LIVE_STATE = 4; // worker: one of the RUN_STATE_* values
export const LIVE_JIT_INSTRET = 5; // worker: instructions executed by translated code
export const LIVE_RAM_RESIDENT = 6; // worker: bytes of guest RAM backed by host memory (about once a second); -1 = unknown
export const LIVE_BOOTS = 7; // worker: guest reboots so far (each makes a fresh machine)
export const LIVE_CONSOLE_BYTES = 8; // worker: console bytes the guest has written since its first boot
export const LIVE_SLOTS = 16;
export const RUN_STATE_BOOTING = 0;
export const RUN_STATE_RUNNING = 1;
export const RUN_STATE_IDLE = 2; // guest waits for an interrupt (WFI)
export const RUN_STATE_PAUSED = 3;
export const RUN_STATE_THROTTLED = 4; // waiting for the scheduler's next credit
export const RUN_STATE_EXITED = 5;
export const INPUT_RING_SIZE = 4096;

/** Messages from worker to owner. */
export type WorkerMessage =
  | { type: 'console'; data: Uint8Array }
  | { type: 'exit'; code: number; reason: string }
  | { type: 'stats'; text: string }
  /** A snapshot was written (by VmConfig.snapshotAt; command snapshots answer the command). */
  | { type: 'snapshot'; result: SnapshotResult }
  /** The machine was restored from VmConfig.restore: how long it took and whether RAM was mapped or read. */
  | { type: 'restored'; ms: number; memory: 'mapped' | 'read'; split?: RestoreSplit }
  /** A migrated VM (VmConfig.incoming) has its disks open and runs; `ms` since migrateStart. */
  | { type: 'migrated'; ms: number }
  | { type: 'error'; message: string };

export interface SharedControl {
  ctrl: Int32Array; // CTRL_SLOTS int32s on a SharedArrayBuffer
  input: Uint8Array; // INPUT_RING_SIZE bytes on a SharedArrayBuffer
  live: BigInt64Array; // LIVE_SLOTS counters on a SharedArrayBuffer
  devices: SharedArrayBuffer; // device counters, published by the worker (device-stats-block.ts)
  harts: BigInt64Array; // per-hart state and counters, published by the worker (hart-stats-block.ts)
}

export function createSharedControl(): SharedControl {
  const live = new BigInt64Array(new SharedArrayBuffer(LIVE_SLOTS * 8));
  live[LIVE_CREDIT] = -1n;
  live[LIVE_RAM_RESIDENT] = -1n;
  return {
    ctrl: new Int32Array(new SharedArrayBuffer(CTRL_SLOTS * 4)),
    input: new Uint8Array(new SharedArrayBuffer(INPUT_RING_SIZE)),
    live,
    devices: createDeviceStatsBlock(),
    harts: createHartStatsBlock(),
  };
}

export function wake(c: SharedControl): void {
  Atomics.add(c.ctrl, CTRL_WAKE, 1);
  Atomics.notify(c.ctrl, CTRL_WAKE);
}

/** Owner side: queue console input; returns how many bytes fit. */
export function pushInput(c: SharedControl, bytes: Uint8Array): number {
  const head = Atomics.load(c.ctrl, CTRL_IN_HEAD);
  const tail = Atomics.load(c.ctrl, CTRL_IN_TAIL);
  const room = INPUT_RING_SIZE - (head - tail);
  const n = Math.min(room, bytes.length);
  for (let i = 0; i < n; i++) c.input[(head + i) % INPUT_RING_SIZE] = bytes[i];
  Atomics.store(c.ctrl, CTRL_IN_HEAD, head + n);
  if (n > 0) wake(c);
  return n;
}

/** Owner side: ask the VM to stop. */
export function requestStop(c: SharedControl): void {
  Atomics.store(c.ctrl, CTRL_STOP, 1);
  wake(c);
}

/** Worker side: take up to max pending input bytes. */
export function pullInput(c: SharedControl, max: number): Uint8Array {
  const head = Atomics.load(c.ctrl, CTRL_IN_HEAD);
  const tail = Atomics.load(c.ctrl, CTRL_IN_TAIL);
  const n = Math.min(max, head - tail);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = c.input[(tail + i) % INPUT_RING_SIZE];
  Atomics.store(c.ctrl, CTRL_IN_TAIL, tail + n);
  return out;
}

export function pendingInput(c: SharedControl): number {
  return Atomics.load(c.ctrl, CTRL_IN_HEAD) - Atomics.load(c.ctrl, CTRL_IN_TAIL);
}

/** Owner side: ask the worker for a statistics report (answered with a 'stats' message). */
export function requestStatsReport(c: SharedControl): void {
  Atomics.add(c.ctrl, CTRL_STATS, 1);
  wake(c);
}

/** Owner side: pause (true) or resume (false) the guest. */
export function requestPause(c: SharedControl, paused: boolean): void {
  Atomics.store(c.ctrl, CTRL_PAUSE, paused ? 1 : 0);
  wake(c);
}

/** Owner side: let the VM run until it has retired `instret` instructions in all (-1n: no limit). */
export function setCredit(c: SharedControl, instret: bigint): void {
  Atomics.store(c.live, LIVE_CREDIT, instret);
  // Only a worker that may wait for credit needs waking. An idle guest (WFI) or a
  // paused one reads the new credit when it next runs; waking it every scheduler
  // period (20 times a second) was most of an idle daemon VM's wakeups.
  const state = Number(Atomics.load(c.live, LIVE_STATE));
  if (state !== RUN_STATE_IDLE && state !== RUN_STATE_PAUSED) wake(c);
}

/**
 * Whether a VM runs each hart on a host thread of its own: asked for, more than
 * one hart, and none of what keeps the harts taking turns on the VM's thread
 * (deterministic runs, the debugger, firmware; docs/smp.md).
 */
export function runsHartThreads(c: Pick<VmConfig, 'hartThreads' | 'cpus' | 'deterministic' | 'gdb' | 'bios'>): boolean {
  return c.hartThreads === true && !c.deterministic && !c.gdb && !c.bios && (c.cpus ?? 1) > 1;
}

/** A snapshot of the live counters. */
export interface LiveCounters {
  instret: bigint;
  jitInstret: bigint;
  credit: bigint;
  heartbeatMs: number;
  busyUs: number;
  state: number;
  /** Guest RAM the host backs now (touched and not given back), or -1 when unknown. */
  ramResidentBytes: number;
  /** Guest reboots so far. */
  boots: number;
  /** Console bytes the guest has written (a sign of life). */
  consoleBytes: number;
}

export function readLive(c: SharedControl): LiveCounters {
  const l = c.live;
  return {
    instret: Atomics.load(l, LIVE_INSTRET),
    jitInstret: Atomics.load(l, LIVE_JIT_INSTRET),
    credit: Atomics.load(l, LIVE_CREDIT),
    heartbeatMs: Number(Atomics.load(l, LIVE_HEARTBEAT_MS)),
    busyUs: Number(Atomics.load(l, LIVE_BUSY_US)),
    state: Number(Atomics.load(l, LIVE_STATE)),
    ramResidentBytes: Number(Atomics.load(l, LIVE_RAM_RESIDENT)),
    boots: Number(Atomics.load(l, LIVE_BOOTS)),
    consoleBytes: Number(Atomics.load(l, LIVE_CONSOLE_BYTES)),
  };
}

/** Where a restore's time went inside the worker (ms each; see worker.ts). */
export interface RestoreSplit {
  /** The VM went to a warm worker (started ahead, its modules loaded), not a new one. */
  warm: boolean;
  /** The warm worker had the core instantiated already, for this RAM size (warm-up.ts). */
  preparedCore?: boolean;
  /** snapshot.json read, checksummed and checked. */
  readState: number;
  /** The machine built: the core's memory and instance, its reset, the devices. */
  buildMachine: number;
  /** memory.bin mapped (or read) into guest RAM. */
  loadMemory: number;
  /** CPU and device state set from the snapshot. */
  restoreState: number;
}
