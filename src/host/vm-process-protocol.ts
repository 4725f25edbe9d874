// Messages between the daemon and a VM's own process (isolation "process").
// They travel on the fork IPC channel with 'advanced' serialization, so
// bigints (live counters, credit) and Uint8Arrays (console bytes, MACs) cross
// as they are. The child (vm-process.ts) hosts an ordinary VmHandle; the
// daemon's side (process-vm-handle.ts) mirrors what it reports.

import type { ResourceLimits } from 'node:worker_threads';
import type { CommandReply, LiveCounters, MachineDeviceStats, VmCommand, VmConfig } from '../vm/protocol.js';
import type { NicSpec } from '../net/nic-spec.js';
import type { NicStats } from '../net/nic-host.js';
import type { HartReport } from '../vm/hart-stats-block.js';

/** How often the child pushes its live counters and NIC counters (ms). */
export const REPORT_INTERVAL_MS = 25;

/** Daemon to child. */
export type ToVmProcess =
  /** First message: set up the NICs (their backends run in the child) and answer 'ready'. */
  | { type: 'setup'; name: string; config: VmConfig; nics: NicSpec[]; resourceLimits?: ResourceLimits; stopTimeoutMs: number }
  /** Start the VM's worker (after the daemon has attached its listeners). */
  | { type: 'boot' }
  | { type: 'input'; data: Uint8Array }
  | { type: 'pause'; paused: boolean }
  /**
   * Credit as the scheduler computed it from `basis`, the instret the daemon
   * last saw; the child re-bases it on its current count (see applyCredit).
   */
  | { type: 'credit'; credit: bigint; basis: bigint }
  | { type: 'requestStats' }
  | { type: 'command'; id: number; command: VmCommand }
  /** Stop the guest; the child exits after its 'exit' message. (A kill is SIGKILL, no message.) */
  | { type: 'stop' };

/** Child to daemon. */
export type FromVmProcess =
  | { type: 'ready' }
  | { type: 'setupFailed'; message: string }
  | { type: 'report'; live: LiveCounters; nics: NicStats[]; devices: MachineDeviceStats; harts: HartReport[]; cpuUs: number; pendingInput: number }
  | { type: 'output'; data: Uint8Array }
  | { type: 'warning'; message: string }
  | { type: 'stats'; text: string }
  | { type: 'reply'; reply: CommandReply }
  | { type: 'exit'; code: number; reason: string };

/**
 * The child's side of a 'credit' message. The scheduler computed `credit` as
 * basis + grant from counters up to one report old; the VM may have run on
 * since, so the grant counts from now, as it would for a VM in a thread
 * (whose counters the scheduler reads fresh). Negative credit (-1n: no
 * limit) passes through.
 */
export function rebaseCredit(credit: bigint, basis: bigint, now: bigint): bigint {
  if (credit < 0n) return credit;
  const grant = credit > basis ? credit - basis : 0n;
  return (now > basis ? now : basis) + grant;
}
