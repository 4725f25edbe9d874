// What the fleet keeps in etcd: the key layout and the records' shapes. Every
// key lives under one prefix (default "tsvisor/"); values are JSON.
//
//   hosts/NAME    a member, under its lease (gone when the lease expires)
//   sched/NAME    {unschedulable, reason}: drained hosts (no lease: survives restarts)
//   alloc/NAME    {vms: {VM: MiB}}: memory placed on a host; every placement
//                 and move compares its mod revision, so two placements never
//                 both take the same room
//   vms/NAME      one VM of the fleet: where it runs, its state, its definition
//   drain/NAME    the progress of the last drain of a host
//   events/NNNN   a ring of fleet events; events-seq counts them

import type { CreateVmRequest } from './types.js';

export const DEFAULT_PREFIX = 'tsvisor/';
/** Fleet events kept in etcd (a ring of keys: the oldest is overwritten). */
export const FLEET_EVENTS = 1000;

export interface HostRecord {
  name: string;
  /** The daemon's TCP API, where the others reach it (migrations, forwarded requests). */
  url: string;
  cores: number;
  memoryBudgetMiB: number;
  /** Guest RAM reserved by this host's own VMs. */
  reservedMiB: number;
  /** The host's free memory as the OS reports it. */
  freeMemoryMiB: number;
  images: string[];
  labels: Record<string, string>;
  vms: number;
  startedAt: string;
  /** Seconds of the lease: how long after its last heartbeat the host counts as dead. */
  leaseSeconds: number;
}

export interface SchedRecord {
  unschedulable: boolean;
  reason?: string;
}

export interface AllocRecord {
  vms: Record<string, number>;
}

export type FleetVmState = 'placed' | 'moving' | 'created' | 'running' | 'paused' | 'stopped' | 'failed' | 'fenced' | 'restarting';

export interface VmRecord {
  name: string;
  host: string;
  memory: number;
  ha: boolean;
  state: FleetVmState;
  /** The create request: what another host needs to run it (HA restart). */
  definition: CreateVmRequest;
  updatedAt: string;
}

export interface DrainVm {
  name: string;
  to: string | null;
  phase: 'pending' | 'migrating' | 'moved' | 'failed' | 'skipped';
  error?: string;
}

export interface DrainRecord {
  host: string;
  state: 'running' | 'done' | 'incomplete';
  startedAt: string;
  finishedAt?: string;
  vms: DrainVm[];
}

export interface FleetEvent {
  seq: number;
  time: string;
  kind: 'joined' | 'left' | 'placed' | 'migrated' | 'drain' | 'undrain' | 'fenced' | 'expired' | 'restarted' | 'conflict';
  host: string;
  vm?: string;
  message: string;
}

export const keys = (prefix: string) => ({
  host: (n: string) => `${prefix}hosts/${n}`,
  hosts: `${prefix}hosts/`,
  sched: (n: string) => `${prefix}sched/${n}`,
  scheds: `${prefix}sched/`,
  alloc: (n: string) => `${prefix}alloc/${n}`,
  allocs: `${prefix}alloc/`,
  vm: (n: string) => `${prefix}vms/${n}`,
  vms: `${prefix}vms/`,
  drain: (n: string) => `${prefix}drain/${n}`,
  event: (slot: number) => `${prefix}events/${String(slot).padStart(6, '0')}`,
  events: `${prefix}events/`,
  eventSeq: `${prefix}events-seq`,
});

/** A host or VM name as the fleet accepts it (the same rule as VM names). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Parse a stored JSON value, or null if it is not an object (a hostile or broken value is skipped, never trusted). */
export function parseRecord<T>(value: Buffer | string | null | undefined): T | null {
  if (value === null || value === undefined) return null;
  try {
    const v = JSON.parse(typeof value === 'string' ? value : value.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as T) : null;
  } catch {
    return null;
  }
}

export function allocatedMiB(a: AllocRecord | null): number {
  let sum = 0;
  for (const v of Object.values(a?.vms ?? {})) if (typeof v === 'number' && Number.isFinite(v) && v > 0) sum += v;
  return sum;
}
