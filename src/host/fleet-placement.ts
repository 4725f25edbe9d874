// Which host a VM goes to: a pure choice over what was read from etcd. The
// choice is only a proposal: the caller commits it in a transaction that
// compares the chosen host's allocation revision, and chooses again if
// another placement got there first.

import { allocatedMiB, type AllocRecord, type HostRecord, type SchedRecord } from './fleet-records.js';

export type PlacementPolicy = 'spread' | 'pack';

export interface PlacementRequest {
  memory: number;
  policy: PlacementPolicy;
  /** Only hosts carrying every one of these labels. */
  labels?: Record<string, string>;
  /** Images the VM needs (kernel, initrd, disks): a host must list them. */
  images?: string[];
  /** Hosts that may not take it (the host being drained, the dead one). */
  exclude?: string[];
}

export interface Candidate {
  host: HostRecord;
  freeMiB: number;
}

/** Hosts that could take the VM, best first; why none could, if none. */
export function rankHosts(
  hosts: HostRecord[],
  alloc: Map<string, AllocRecord | null>,
  sched: Map<string, SchedRecord | null>,
  req: PlacementRequest,
): { ranked: Candidate[]; why: string } {
  const ranked: Candidate[] = [];
  const reasons: string[] = [];
  for (const h of hosts) {
    if (req.exclude?.includes(h.name)) continue;
    if (sched.get(h.name)?.unschedulable) {
      reasons.push(`${h.name}: unschedulable`);
      continue;
    }
    const missingLabel = Object.entries(req.labels ?? {}).find(([k, v]) => h.labels?.[k] !== v);
    if (missingLabel) {
      reasons.push(`${h.name}: no label ${missingLabel[0]}=${missingLabel[1]}`);
      continue;
    }
    const missingImage = (req.images ?? []).find((i) => !(h.images ?? []).includes(i));
    if (missingImage !== undefined) {
      reasons.push(`${h.name}: no image ${missingImage}`);
      continue;
    }
    const freeMiB = h.memoryBudgetMiB - allocatedMiB(alloc.get(h.name) ?? null);
    if (freeMiB < req.memory) {
      reasons.push(`${h.name}: ${freeMiB} MiB free`);
      continue;
    }
    ranked.push({ host: h, freeMiB });
  }
  // spread: the most free memory first; pack: the least that still fits. Ties by name, so the order is stable.
  ranked.sort((a, b) => (req.policy === 'pack' ? a.freeMiB - b.freeMiB : b.freeMiB - a.freeMiB) || a.host.name.localeCompare(b.host.name));
  const why = hosts.length === 0 ? 'no host has joined the fleet' : `no host can take ${req.memory} MiB (${reasons.join('; ') || 'all excluded'})`;
  return { ranked, why };
}

/**
 * The candidate to try: the best one, except among near-equals. Concurrent
 * placements that all took "the best" host would all compare the same
 * allocation revision and all but one would lose; so spread picks at random
 * among the hosts with at least 90% of the best one's free memory (at most
 * 16), and every retry (either policy) widens the choice by one more host.
 */
export function pickCandidate(ranked: Candidate[], policy: PlacementPolicy, attempt: number, random: () => number = Math.random): Candidate | undefined {
  if (ranked.length === 0) return undefined;
  let pool = 1;
  if (policy === 'spread') {
    const best = ranked[0]!.freeMiB;
    while (pool < ranked.length && pool < 16 && ranked[pool]!.freeMiB >= best * 0.9) pool++;
  }
  pool = Math.min(ranked.length, pool + attempt);
  return ranked[Math.floor(random() * pool)];
}

/** Image names a create request needs on the host: kernel, initrd, System.map and disks, relative to the images directory. */
export function imagesOf(def: { kernel: string; initrd?: string; disks?: { path: string }[] }): string[] {
  const out = [def.kernel];
  if (def.initrd !== undefined) out.push(def.initrd);
  for (const d of def.disks ?? []) out.push(d.path);
  return out.filter((p) => !p.startsWith('/'));
}
