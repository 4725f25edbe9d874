// The VM worker's part of a live migration (the owner drives it with commands,
// see VmCommand in protocol.ts). Source: pages to send, round by round, from
// the core's dirty page map, copied out between slices; a hold that keeps the
// guest stopped for the final pass; a CPU throttle (auto-converge). Destination:
// received pages written into guest RAM, every index checked again.

import type { CpuCore } from '../../machine/cpu-core.js';
import { guestPages } from '../snapshot.js';
import { PAGE_SIZE } from './stream.js';

export interface PagesOut {
  /** Page indexes (Uint32Array buffer) and their data, one page each. */
  indexes: Uint32Array;
  data: Uint8Array;
  /** Pages still queued in this round after these. */
  left: number;
}

export class SourceMigration {
  /** Per page: 1 = still to send in this round. */
  private pending: Uint8Array;
  private cursor = 0;
  private queued = 0;
  /** The guest stays stopped (final pass, or waiting for the destination's word). */
  hold = false;
  /** Percent of host time the guest is kept off the CPU (auto-converge). */
  throttle = 0;

  constructor(private readonly core: CpuCore) {
    // The log starts before memory is read, so a page changed while round 0 runs is sent again.
    core.takeDirtyPages();
    const f = new Uint8Array(Math.floor(core.ram.length / PAGE_SIZE));
    for (const [first, count] of guestPages(core.ram).nonZeroRuns()) f.fill(1, first, first + count);
    this.pending = f;
    this.queued = count(f);
  }

  get left(): number {
    return this.queued;
  }

  /** The next round: every page written since the previous one started. Returns how many. */
  nextRound(): number {
    const d = this.core.takeDirtyPages();
    // Pages not sent yet stay queued (a round cut short by the final pass).
    for (let i = 0; i < d.length; i++) if (d[i]) this.pending[i] = 1;
    this.cursor = 0;
    this.queued = count(this.pending);
    return this.queued;
  }

  /** Pages written since the current round started (the next round's size, so far). */
  dirtyNow(): number {
    return this.core.dirtyPageCount();
  }

  /** Copy up to `max` queued pages out of guest RAM. */
  take(max: number): PagesOut {
    const idx: number[] = [];
    const p = this.pending;
    while (idx.length < max && this.cursor < p.length) {
      if (p[this.cursor]) {
        p[this.cursor] = 0;
        idx.push(this.cursor);
      }
      this.cursor++;
    }
    this.queued -= idx.length;
    const data = new Uint8Array(idx.length * PAGE_SIZE);
    const ram = this.core.ram;
    idx.forEach((pg, i) => data.set(ram.subarray(pg * PAGE_SIZE, (pg + 1) * PAGE_SIZE), i * PAGE_SIZE));
    return { indexes: Uint32Array.from(idx), data, left: this.queued };
  }
}

function count(f: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < f.length; i++) n += f[i];
  return n;
}

/** Destination: write a batch into guest RAM. Indexes were checked by the decoder; checked again here. */
export function applyPages(ram: Uint8Array, indexes: Uint32Array, offsets: Int32Array, data: Uint8Array): void {
  const pages = Math.floor(ram.length / PAGE_SIZE);
  for (let i = 0; i < indexes.length; i++) {
    const pg = indexes[i];
    if (pg >= pages) throw new Error(`page ${pg} is outside guest RAM`);
    const at = pg * PAGE_SIZE;
    const off = offsets[i];
    if (off < 0) ram.fill(0, at, at + PAGE_SIZE);
    else {
      if (off + PAGE_SIZE > data.length) throw new Error('page data out of range');
      ram.set(data.subarray(off, off + PAGE_SIZE), at);
    }
  }
}
