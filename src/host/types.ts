// The shapes the daemon works with (the TypeScript side of schemas.ts).

export interface CreateVmRequest {
  name: string;
  /** Harts, 1..8 (default 1). */
  cpus?: number;
  /** Older name of cpus. */
  vcpus?: number;
  /** With several harts: each on a host thread of its own (default true; docs/smp.md). */
  hartThreads?: boolean;
  /** Guest RAM in MiB. */
  memory: number;
  kernel: string;
  initrd?: string;
  /** The kernel's System.map (see docs/security.md); default: one next to the kernel. */
  systemMap?: string;
  /** Seconds of running time without a trap from U-mode or a WFI before the VM fails as hung (0 = off). */
  stallTimeout?: number;
  /** Fail a VM whose guest shows no sign of life early in its boot (default: with an initrd or a disk; see VmConfig.bootWatchInsns). */
  bootWatch?: boolean;
  append?: string;
  rootDisk?: boolean;
  disks?: { path: string; format?: 'raw' | 'qcow2'; readonly?: boolean; serial?: string; limits?: DiskLimits }[];
  nics?: { mode: 'user' | 'switch' | 'tap'; mac?: string; switch?: string; tap?: string; hostfwd?: string[]; guestfwd?: string[]; hostLoopback?: boolean; allow?: string[]; limits?: NicApiLimits }[];
  balloon?: boolean;
  /** Start from this snapshot (under STATE_DIR/snapshots) instead of booting. */
  snapshot?: string;
  /** With snapshot: start as a clone (new generation ID, own MACs, disk overlays in STATE_DIR/clones/NAME). */
  clone?: boolean;
  cpu?: { weight?: number; cap?: number };
  deterministic?: boolean;
  jit?: boolean;
  /** A GDB remote stub, reached through the WebSocket GET /v1/vms/NAME/gdb (thread isolation only). */
  gdb?: boolean;
  /** Where the VM runs: a worker thread of the daemon (default) or its own child process. */
  isolation?: 'thread' | 'process';
  /** In a fleet: restarted on another host when this one dies (docs/fleet.md). */
  ha?: boolean;
  restart?: { policy: 'no' | 'on-failure' | 'always'; maxRetries?: number };
  debug?: { failAfterMs?: number; hangAfterMs?: number; oomAfterMs?: number };
}

export interface DiskLimits {
  bps?: number;
  iops?: number;
  bpsBurst?: number;
  iopsBurst?: number;
}

export interface NicApiLimits {
  txBps?: number;
  rxBps?: number;
  txPps?: number;
  rxPps?: number;
}

export interface PatchVmRequest {
  cpu?: { weight?: number; cap?: number | null };
  disks?: { index: number; limits: DiskLimits }[];
  nics?: { index: number; limits: NicApiLimits }[];
  balloon?: { targetMiB: number };
}

export type VmState = 'created' | 'running' | 'paused' | 'stopped' | 'failed';

/** What is stored on disk for each VM (one JSON file per VM). */
export interface VmDefinition {
  version: 1;
  config: CreateVmRequest;
  createdAt: string;
}

export interface CloneRequest {
  count: number;
  prefix?: string;
  start?: boolean;
  nics?: CreateVmRequest['nics'];
  cpu?: CreateVmRequest['cpu'];
  isolation?: CreateVmRequest['isolation'];
}
