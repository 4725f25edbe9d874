// The worker's side of the command port: the owner posts CommandRequests on a
// MessagePort (passed in workerData); the worker, which never returns to its
// event loop while the guest runs, takes them with receiveMessageOnPort between
// slices and answers each on the same port. The owner wakes the worker after
// posting (protocol.ts wake()), so an idle guest does not delay a command.

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { CommandReply, CommandRequest, SnapshotResult, VmCommand, VmConfig } from './protocol.js';
import type { VirtMachine } from '../machine/virt.js';
import { checkLimits, type RateLimits } from '../devices/rate-limiter.js';

/** What commands change beyond the running machine: kept so a guest reboot keeps them. */
export interface CommandState {
  machine: VirtMachine;
  /** The disk settings the next machine is built from (limits are updated in place). */
  disks: { limits?: RateLimits }[];
  /** The balloon settings the next machine is built from, or null without a balloon. */
  balloon: { targetMiB?: number } | null;
  /** Write a snapshot (the worker provides it: it owns the disks and the configuration). */
  snapshot?: (dir: string, overlays?: (string | null)[]) => SnapshotResult;
  /** Instruction-count hooks of deterministic runs (the worker provides them); they throw for a count already passed. */
  scheduleSnapshot?: (dir: string, instret: number) => void;
  scheduleInput?: (events: { instret: number; data: string }[]) => void;
  /** Reboot the machine at once (the worker provides it). */
  reset?: () => void;
  /** The host terminal's size, applied again to the machine a guest reboot makes. */
  consoleSize?: { cols: number; rows: number };
  /** Live migration (the worker provides it): carries out the migrate* commands. */
  migration?: (cmd: Extract<VmCommand, { type: `migrate${string}` }>) => unknown;
  /** Called after each command, before its reply: the worker publishes its device counters, so the owner reads the change as soon as the reply arrives. */
  afterCommand?: () => void;
}

/** Carry out one command; throws an Error whose message goes back to the owner. */
export function executeCommand(s: CommandState, cmd: VmCommand): unknown {
  switch (cmd.type) {
    case 'setDiskLimits': {
      if (!Number.isInteger(cmd.disk) || cmd.disk < 0 || cmd.disk >= s.disks.length) {
        throw new Error(`no disk ${cmd.disk} (the VM has ${s.disks.length})`);
      }
      const limits = cmd.limits ?? {};
      const bad = checkLimits(limits);
      if (bad) throw new Error(`disk ${cmd.disk}: ${bad}`);
      s.machine.setDiskLimits(cmd.disk, limits);
      s.disks[cmd.disk].limits = limits;
      return null;
    }
    case 'setBalloonTarget': {
      if (!s.balloon) throw new Error('the VM has no balloon (start it with balloon enabled)');
      if (typeof cmd.mib !== 'number' || !Number.isFinite(cmd.mib) || cmd.mib < 0) throw new Error(`bad balloon target ${cmd.mib} MiB`);
      s.machine.setBalloonTarget(cmd.mib);
      s.balloon.targetMiB = cmd.mib;
      return null;
    }
    case 'setNicLimits': {
      if (!Number.isInteger(cmd.nic) || cmd.nic < 0 || cmd.nic >= s.machine.nicCount) {
        throw new Error(`no NIC ${cmd.nic} (the VM has ${s.machine.nicCount})`);
      }
      for (const dir of ['tx', 'rx'] as const) {
        const bad = cmd.limits?.[dir] ? checkLimits(cmd.limits[dir]!) : null;
        if (bad) throw new Error(`NIC ${cmd.nic} ${dir}: ${bad}`);
      }
      s.machine.setNicLimits(cmd.nic, cmd.limits ?? {});
      return null;
    }
    case 'deviceStats':
      if (cmd.refresh) s.machine.refreshBalloonStats();
      return s.machine.deviceStats();
    case 'snapshot':
      if (typeof cmd.dir !== 'string' || cmd.dir === '') throw new Error('snapshot needs a directory');
      if (!s.snapshot) throw new Error('this VM cannot take snapshots');
      if (cmd.overlays !== undefined && (!Array.isArray(cmd.overlays) || !cmd.overlays.every((o) => o === null || (typeof o === 'string' && o !== '')))) {
        throw new Error('snapshot overlays must be paths or null, one per disk');
      }
      return s.snapshot(cmd.dir, cmd.overlays);
    case 'scheduleSnapshot':
      if (typeof cmd.dir !== 'string' || cmd.dir === '' || !Number.isSafeInteger(cmd.instret)) throw new Error('scheduleSnapshot needs a directory and an instruction count');
      if (!s.scheduleSnapshot) throw new Error('this VM cannot take snapshots');
      s.scheduleSnapshot(cmd.dir, cmd.instret);
      return null;
    case 'scheduleInput':
      if (!Array.isArray(cmd.events) || !cmd.events.every((e) => Number.isSafeInteger(e?.instret) && typeof e?.data === 'string')) {
        throw new Error('scheduleInput needs events of {instret, data}');
      }
      if (!s.scheduleInput) throw new Error('this VM cannot schedule input');
      s.scheduleInput(cmd.events);
      return null;
    case 'pressButton': {
      if (cmd.button !== 'power' && cmd.button !== 'restart') throw new Error(`unknown button ${JSON.stringify(cmd.button)}`);
      const why = s.machine.pressButton(cmd.button);
      if (why) throw new Error(why);
      return null;
    }
    case 'reset':
      if (!s.reset) throw new Error('this VM cannot be reset');
      s.reset();
      return null;
    case 'consoleSize': {
      if (!s.machine.setConsoleSize(cmd.cols, cmd.rows)) throw new Error('the VM has no virtio-console');
      s.consoleSize = { cols: cmd.cols, rows: cmd.rows };
      return null;
    }
    case 'migrateBegin':
    case 'migrateTake':
    case 'migrateDiskTake':
    case 'migrateNextRound':
    case 'migrateThrottle':
    case 'migrateHold':
    case 'migrateReleaseDisks':
    case 'migrateResume':
    case 'migrateLoad':
    case 'migrateState':
    case 'migrateStart':
      if (!s.migration) throw new Error(`${cmd.type}: this VM is not in that phase of a migration`);
      return s.migration(cmd);
    default:
      throw new Error(`unknown command ${JSON.stringify((cmd as { type?: unknown }).type)}`);
  }
}

/** Why the limits and balloon settings of a VmConfig are unusable, or null (checked before boot). */
export function checkDeviceConfig(config: VmConfig): string | null {
  for (const [i, d] of (config.disks ?? []).entries()) {
    const bad = d.limits ? checkLimits(d.limits) : null;
    if (bad) return `disk ${i} (${d.path}): ${bad}`;
  }
  const b = config.balloon;
  if (b && b !== true) {
    if (b.targetMiB !== undefined && !(Number.isFinite(b.targetMiB) && b.targetMiB >= 0)) return `balloon target ${b.targetMiB} MiB is out of range`;
    if (b.statsIntervalMs !== undefined && !(Number.isFinite(b.statsIntervalMs) && b.statsIntervalMs >= 0)) return `balloon statistics interval ${b.statsIntervalMs} ms is out of range`;
  }
  return null;
}

/** Take every pending command from the port and answer it. Returns how many there were. */
export function drainCommands(port: MessagePort | undefined, s: CommandState): number {
  if (!port) return 0;
  let n = 0;
  for (;;) {
    const got = receiveMessageOnPort(port);
    if (!got) return n;
    n++;
    const req = got.message as CommandRequest;
    let reply: CommandReply;
    try {
      reply = { id: req.id, ok: true, result: executeCommand(s, req.command) };
    } catch (e) {
      reply = { id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    s.afterCommand?.();
    // Pages copied out for a migration move to the owner rather than being copied again.
    const r = reply.ok ? (reply.result as { frames?: unknown } | null) : null;
    const moved = r && r.frames instanceof Uint8Array ? [r.frames.buffer] : [];
    port.postMessage(reply, moved as ArrayBuffer[]);
    // After a batch of migration pages the guest runs a slice before the next:
    // the owner asks for the next batch at once, and draining on would keep the
    // guest stopped for a whole round, which then looks clean (no page dirtied)
    // and ends pre-copy with the guest's whole working set still to send.
    if (moved.length > 0) return n;
  }
}
