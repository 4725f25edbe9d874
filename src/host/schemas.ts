// JSON schemas of the daemon's request and response bodies. The same objects
// are embedded in the OpenAPI document (openapi.ts) and compiled by ajv for
// request validation (validate.ts), so documentation and checks cannot drift.

import { MAX_MEM_MIB, MIN_MEM_MIB } from '../common/size.js';

export const NAME_PATTERN = '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$';
export const MAX_DISKS = 6;
export const MAX_NICS = 4;
export const MIN_WEIGHT = 2;
export const MAX_WEIGHT = 262144;
export const DEFAULT_WEIGHT = 1024;
/** hartThreads when a create request leaves it out: each hart of a multi-hart VM on a host thread of its own (docs/smp.md). */
export const DEFAULT_HART_THREADS = true;

/** A host path (checked against the images directory after schema validation). */
const pathSchema = { type: 'string', minLength: 1, maxLength: 4096 } as const;

const rate = { type: 'integer', minimum: 1, maximum: 1e12 } as const;

/** Token-bucket limits of a disk: bytes and requests per second, with one-time bursts. */
export const diskLimitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { bps: rate, iops: rate, bpsBurst: rate, iopsBurst: rate },
} as const;

/** Token-bucket limits of a NIC per direction (tx: guest to host): bytes and frames per second. */
export const nicLimitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { txBps: rate, rxBps: rate, txPps: rate, rxPps: rate },
} as const;

export const diskSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['path'],
  properties: {
    path: pathSchema,
    format: { type: 'string', enum: ['raw', 'qcow2'], description: 'when omitted, read from the file once, at create, and stored: never guessed again' },
    readonly: { type: 'boolean' },
    serial: { type: 'string', pattern: '^[\\x20-\\x7e]{0,20}$' },
    limits: diskLimitsSchema,
  },
} as const;

/** A virtio-net NIC: user networking (hostfwd, guestfwd, hostLoopback, allow), a named switch, or a TAP device. */
export const nicSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['mode'],
  properties: {
    mode: { type: 'string', enum: ['user', 'switch', 'tap'] },
    mac: { type: 'string', pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' },
    switch: { type: 'string', maxLength: 64 },
    tap: { type: 'string', maxLength: 15 },
    hostfwd: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 64 } },
    guestfwd: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 64 }, description: 'tcp:GUESTADDR:PORT-HOSTADDR:PORT; the daemon policy (--allow-guestfwd) must allow the target' },
    hostLoopback: { type: 'boolean', description: "the gateway address is the host's 127.0.0.1 (needs --allow-guestfwd covering 127.0.0.1; each connection is checked against it)" },
    allow: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 43 } },
    limits: nicLimitsSchema,
  },
} as const;

export const cpuSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    weight: { type: 'integer', minimum: MIN_WEIGHT, maximum: MAX_WEIGHT },
    // Host cores; the upper bound is checked against the hart count and --cpus.
    cap: { type: 'number', minimum: 0.01, maximum: 1024, description: 'most host cores the VM (all its harts together) may use: at most its hart count and the daemon\'s --cpus; harts take turns on one thread, so a VM uses at most one core whatever its cap' },
  },
} as const;

export const restartSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['policy'],
  properties: {
    policy: { type: 'string', enum: ['no', 'on-failure', 'always'] },
    maxRetries: { type: 'integer', minimum: 0, maximum: 1000 },
  },
} as const;

/** Accepted only when the daemon runs with --debug-faults (tests of fault isolation). */
export const debugSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    failAfterMs: { type: 'integer', minimum: 0, maximum: 3_600_000 },
    hangAfterMs: { type: 'integer', minimum: 0, maximum: 3_600_000 },
    oomAfterMs: { type: 'integer', minimum: 0, maximum: 3_600_000 },
  },
} as const;

export const createVmSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'memory', 'kernel'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    cpus: { type: 'integer', minimum: 1, maximum: 8, description: 'harts (virtual CPUs) of the VM; they take turns on its thread (default 1)' },
    vcpus: { type: 'integer', minimum: 1, maximum: 8, description: 'the same as cpus (older name)' },
    hartThreads: { type: 'boolean', default: DEFAULT_HART_THREADS, description: 'with several harts: each runs on a host thread of its own, in parallel (default true; false: they take turns on the VM\'s thread, as deterministic VMs and VMs with gdb always do)' },
    memory: { type: 'integer', minimum: MIN_MEM_MIB, maximum: MAX_MEM_MIB, description: 'guest RAM in MiB' },
    kernel: pathSchema,
    initrd: pathSchema,
    systemMap: { ...pathSchema, description: "the kernel's System.map: a kernel panic (panic() entered) fails the VM; default: System.map-VERSION or System.map next to the kernel" },
    stallTimeout: { type: 'integer', minimum: 0, maximum: 86400, description: 'seconds of running time without a trap from a program or a WFI before the VM fails as hung (default 60, 0 = off)' },
    bootWatch: { type: 'boolean', description: 'fail the VM when its guest takes no interrupt, runs no program and never idles in its first 2e9 instructions (a kernel that stopped early, e.g. too little memory); default: on when the VM has an initrd or a disk' },
    append: { type: 'string', maxLength: 2048 },
    rootDisk: { type: 'boolean', description: 'the first disk is the root file system: root=/dev/vda rw is added to the command line' },
    disks: { type: 'array', maxItems: MAX_DISKS, items: diskSchema },
    nics: { type: 'array', maxItems: MAX_NICS, items: nicSchema },
    cpu: cpuSchema,
    deterministic: { type: 'boolean' },
    jit: { type: 'boolean' },
    gdb: { type: 'boolean', description: 'a GDB remote stub, reached through the WebSocket GET /v1/vms/NAME/gdb (`tsvisor gdb NAME --listen HOST:PORT` bridges it to a local port); reverse execution with deterministic; thread isolation only' },
    balloon: { type: 'boolean', description: 'attach a virtio-balloon device (its target is set with PATCH)' },
    snapshot: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$',
      description: 'start from this snapshot (a name under the state directory\'s snapshots/, taken with PUT /v1/vms/NAME/snapshot) instead of booting; memory must match it',
    },
    clone: {
      type: 'boolean',
      description: 'with snapshot: start as a clone of it: a new VM generation ID (the guest reseeds its RNG), the NICs\' own MACs, and qcow2 overlays over the snapshot\'s writable disks (in the state directory, made anew at every start)',
    },
    restart: restartSchema,
    ha: {
      type: 'boolean',
      description: 'in a fleet (serve --fleet): restart this VM on another host when its host dies (its disks must be on storage the hosts share); see docs/fleet.md',
    },
    isolation: {
      type: 'string',
      enum: ['thread', 'process'],
      description: 'where the VM runs: a worker thread of the daemon (thread, the default) or its own child process (process: a crash of the whole Node runtime takes only this VM)',
    },
    debug: debugSchema,
  },
} as const;

export const patchVmSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    disks: {
      type: 'array',
      maxItems: MAX_DISKS,
      items: { type: 'object', additionalProperties: false, required: ['index', 'limits'], properties: { index: { type: 'integer', minimum: 0, maximum: MAX_DISKS - 1 }, limits: diskLimitsSchema } },
    },
    nics: {
      type: 'array',
      maxItems: MAX_NICS,
      items: { type: 'object', additionalProperties: false, required: ['index', 'limits'], properties: { index: { type: 'integer', minimum: 0, maximum: MAX_NICS - 1 }, limits: nicLimitsSchema } },
    },
    balloon: { type: 'object', additionalProperties: false, required: ['targetMiB'], properties: { targetMiB: { type: 'integer', minimum: 0, maximum: 65536 } } },
    cpu: {
      type: 'object',
      additionalProperties: false,
      properties: {
        weight: cpuSchema.properties.weight,
        // null removes the cap.
        cap: { anyOf: [cpuSchema.properties.cap, { type: 'null' }] },
      },
    },
  },
} as const;

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string' } },
} as const;

export const vmStatsSchema = {
  type: 'object',
  properties: {
    state: { type: 'string', enum: ['created', 'running', 'paused', 'stopped', 'failed'] },
    uptimeSeconds: { type: 'number' },
    instructions: { type: 'integer', description: 'guest instructions retired since the VM started' },
    mips: { type: 'number', description: 'guest instructions per second (millions) over the last scheduler window' },
    busyUs: { type: 'integer', description: 'host CPU time spent running guest code' },
    cpuShare: { type: 'number', description: 'host cores used over the last window, from busy time' },
    instructionShare: { type: 'number', description: 'share of all guest instructions retired on the host in the last window' },
    translatedShare: { type: 'number', description: 'fraction of instructions run by translated code' },
    memoryReservedMiB: { type: 'integer' },
    restarts: { type: 'integer' },
    lastFailure: { type: ['string', 'null'] },
    runState: { type: 'string', description: 'worker run state: booting, running, idle, paused, throttled, exited' },
    devices: { type: 'object', description: 'per-NIC counters (frames, bytes, drops) while running' },
    harts: {
      type: 'array',
      description: 'one entry per hart (the VM\'s cpus), in hart order, whether or not the VM runs; counters are the sums since the VM started (across guest reboots), at most about 200 ms old; the VM-wide figures above are their totals',
      items: {
        type: 'object',
        required: ['hart', 'state', 'waiting', 'instructions', 'interrupts', 'wfis', 'ipis', 'switchedIn'],
        properties: {
          hart: { type: 'integer', minimum: 0, maximum: 7 },
          state: { type: 'string', enum: ['started', 'stopped', 'suspended'], description: 'SBI HSM state (stopped: not brought up by the kernel, taken offline, or the VM is not running)' },
          waiting: { type: 'boolean', description: 'waiting for an interrupt (WFI with nothing pending, or a retentive suspend)' },
          instructions: { type: 'integer', description: 'guest instructions this hart retired' },
          interrupts: { type: 'integer', description: 'interrupts this hart took (timer, IPI, external)' },
          wfis: { type: 'integer', description: 'times this hart went idle in WFI' },
          ipis: { type: 'integer', description: 'SBI IPIs sent to this hart' },
          switchedIn: { type: 'integer', description: 'times this hart got the VM\'s thread from another hart (harts take turns)' },
        },
      },
    },
  },
} as const;

export const vmSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    state: {
      type: 'string',
      enum: ['created', 'running', 'paused', 'stopped', 'failed', 'broken'],
      description: 'broken: a stored definition that failed its checks when the daemon started; it has a reason, no config, and only DELETE works on it',
    },
    reason: { type: 'string', description: 'why a broken VM was not loaded' },
    config: { anyOf: [createVmSchema, { type: 'null' }] },
    createdAt: { type: 'string' },
    lastFailure: { type: ['string', 'null'] },
    restarts: { type: 'integer' },
    isolation: { type: 'string', enum: ['thread', 'process'], description: 'config.isolation, with the default filled in' },
    pid: { type: ['integer', 'null'], description: "the VM's own process while it runs (isolation process); null for a thread VM or a VM not running" },
    notes: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const SNAPSHOT_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';
export const MAX_CLONES_PER_REQUEST = 64;

/** POST /v1/snapshots/{snap}/clones: N VMs defined (and started) from one snapshot. */
export const cloneRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['count'],
  properties: {
    count: { type: 'integer', minimum: 1, maximum: MAX_CLONES_PER_REQUEST },
    prefix: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,50}$', description: 'clones are named PREFIX-1 .. PREFIX-N (default: the snapshot\'s name)' },
    start: { type: 'boolean', description: 'start them at once (default true)' },
    nics: { type: 'array', maxItems: MAX_NICS, items: nicSchema, description: 'NICs of every clone, as many as the snapshot has (default: user networking on each); MACs derive from each clone\'s name unless given' },
    cpu: cpuSchema,
    isolation: { type: 'string', enum: ['thread', 'process'] },
  },
} as const;

/** POST /v1/vms/{name}/migrate (checked by migration-out.ts, which says the same in its errors). */
export const migrateRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['to', 'token'],
  properties: {
    to: { type: 'string', maxLength: 300, pattern: '^http://[^\\s/]+/?$', description: 'the destination daemon as http://HOST:PORT (its --listen address)' },
    token: { type: 'string', minLength: 1, maxLength: 1024, description: "the destination daemon's bearer token" },
    downtimeLimitMs: { type: 'integer', minimum: 1, maximum: 60000, description: 'longest the guest may be stopped for the last copy (default 300)' },
    timeoutS: { type: 'integer', minimum: 1, maximum: 86400, description: 'give up (the VM runs on here) after this long' },
  },
} as const;

export const migrationProgressSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    phase: { type: 'string', enum: ['connecting', 'precopy', 'stopped', 'committing', 'completed', 'failed', 'cancelled'] },
    round: { type: 'integer', description: 'pre-copy rounds so far' },
    bytesSent: { type: 'integer' },
    pagesSent: { type: 'integer' },
    dirtyPages: { type: 'integer', description: 'pages dirtied during the last round' },
    dirtyRate: { type: 'number', description: 'pages dirtied per second in the last round' },
    bandwidth: { type: 'number', description: 'bytes per second in the last round' },
    throttlePercent: { type: 'integer', description: 'auto-converge: share of the time the guest is held' },
    startedAt: { type: 'integer', description: 'ms since the epoch' },
    totalMs: { type: 'number' },
    downtimeMs: { type: 'number' },
    error: { type: 'string' },
  },
} as const;

export const snapshotSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    createdAt: { type: 'string' },
    memory: { type: 'integer', description: 'guest RAM in MiB' },
    instret: { type: 'integer', description: 'guest instructions retired at the snapshot' },
    dataPages: { type: 'integer', description: 'guest pages stored (zero pages are not)' },
    deterministic: { type: 'boolean' },
    disks: { type: 'array', items: { type: 'string' }, description: 'the disk images the snapshot needs, unchanged' },
    nics: { type: 'integer', description: 'a VM restored from it must have this many NICs' },
    macs: { type: 'array', items: { type: 'string' }, description: 'the MAC of each NIC, which a VM restored from it must keep' },
    usedBy: { type: 'array', items: { type: 'string' }, description: 'VMs defined from it (it cannot be deleted while there are any)' },
    error: { type: 'string', description: 'why the snapshot cannot be read (it is listed, but cannot be used)' },
  },
} as const;

const series = { type: 'array', items: { type: ['number', 'null'] } } as const;

/** GET /v1/vms/NAME/history and /v1/host/history: columns of equal length, oldest first; null where the VM was not running. */
export const historySchema = {
  type: 'object',
  properties: {
    intervalMs: { type: 'integer', description: 'time between samples' },
    capacity: { type: 'integer', description: 'samples kept (the oldest go first)' },
    t: { type: 'array', items: { type: 'integer' }, description: 'sample times, ms since the epoch' },
    cpuShare: { ...series, description: 'host cores used' },
    mips: { ...series, description: 'guest instructions per second (millions)' },
    memoryTouchedMiB: { ...series, description: 'guest RAM backed by host memory' },
    diskReadBps: { ...series, description: 'bytes per second read by the guest, all disks' },
    diskWriteBps: { ...series, description: 'bytes per second written by the guest, all disks' },
    netRxBps: { ...series, description: 'bytes per second delivered to the guest, all NICs' },
    netTxBps: { ...series, description: 'bytes per second sent by the guest, all NICs' },
  },
} as const;

export const eventSchema = {
  type: 'object',
  properties: {
    time: { type: 'string', description: 'ISO 8601' },
    vm: { type: ['string', 'null'], description: 'null: about the daemon itself' },
    kind: { type: 'string', description: 'created, started, stopped, failed, paused, resumed, restarted, changed, snapshot, deleted, broken, migrating, migrated, daemon' },
    level: { type: 'string', enum: ['info', 'warning', 'error'] },
    message: { type: 'string' },
  },
} as const;

export const imageSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'path relative to the images directory (usable as kernel, initrd or a disk path)' },
    size: { type: 'integer' },
    kind: { type: 'string', enum: ['kernel', 'initrd', 'qcow2', 'disk', 'system-map', 'other'], description: 'guessed from the first bytes' },
  },
} as const;
