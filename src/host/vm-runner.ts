// What the daemon (supervisor, scheduler, routes, metrics) uses of a running
// VM. VmHandle (a worker thread in the daemon) provides it as is;
// ProcessVmHandle provides it for a VM in its own process.

import type { EventEmitter } from 'node:events';
import type { VmExit, VmHandleEvents } from '../vm/vm-handle.js';
import type { CommandResult, GdbPortMessage, LiveCounters, MachineDeviceStats, RateLimits, SnapshotResult, VmCommand } from '../vm/protocol.js';
import type { NicStats } from '../net/nic-host.js';
import type { NicLimits } from '../devices/virtio/net.js';
import type { HartReport } from '../vm/hart-stats-block.js';

export interface VmRunner extends EventEmitter<VmHandleEvents> {
  readonly exited: Promise<VmExit>;
  readonly running: boolean;
  start(): void;
  stop(): Promise<VmExit>;
  kill(reason: string): Promise<VmExit>;
  pause(): void;
  resume(): void;
  setCredit(instret: bigint): void;
  live(): LiveCounters;
  sendInput(bytes: Uint8Array): void;
  /** Console input accepted but not yet taken by the guest (bytes). */
  readonly pendingInputBytes: number;
  requestStats(): void;
  nicStats(): NicStats[];
  /** Device counters as last published (shared memory for a thread VM, the last report for a process VM); never waits. */
  sharedDeviceStats(): MachineDeviceStats;
  deviceStats(refresh?: boolean): Promise<MachineDeviceStats>;
  /** Each hart's state and counters as last published (like sharedDeviceStats); never waits. */
  hartStats(): HartReport[];
  setDiskLimits(index: number, limits: RateLimits): Promise<void>;
  setNicLimits(index: number, limits: NicLimits): Promise<void>;
  setBalloonTarget(mib: number): Promise<void>;
  /** Pass a debugger's connection and bytes to the VM's GDB stub (thread VMs with `gdb`; absent for a process VM). */
  gdbPost?(msg: GdbPortMessage): void;
  /** Send a command to the running VM's worker (src/vm/protocol.ts VmCommand); rejects with the worker's error. */
  command<C extends VmCommand>(cmd: C): Promise<CommandResult<C>>;
  /** Write a snapshot of the running VM into `dir` (absolute, new or empty); `overlays` freezes disks (see VmCommand). */
  snapshot(dir: string, overlays?: (string | null)[]): Promise<SnapshotResult>;
}
