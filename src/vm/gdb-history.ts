// Checkpoints of a deterministic run for reverse execution: the machine state
// (plain data from VirtMachine.saveState) every K instructions, and guest RAM
// as one full copy at the newest checkpoint plus, for each older one, the
// pages it had that differ from the next (an undo log). Going back to a
// checkpoint copies the newest RAM and applies the undo pages down to it.

import { Buffer } from 'node:buffer';

const PAGE = 4096;
const CHUNK = 64 * 1024;

interface Checkpoint {
  instret: bigint;
  state: unknown;
  /** Pages (by index) whose content at this checkpoint differs from the next one's: that content. */
  undo: Map<number, Uint8Array>;
}

export class ReverseHistory {
  private shadow: Uint8Array | null = null;
  private readonly cps: Checkpoint[] = [];

  constructor(private readonly maxCheckpoints: number) {}

  /** Instruction count of the oldest checkpoint (how far back reverse execution can go), or null. */
  get oldest(): bigint | null {
    return this.cps[0]?.instret ?? null;
  }

  get newest(): bigint | null {
    return this.cps.at(-1)?.instret ?? null;
  }

  get count(): number {
    return this.cps.length;
  }

  /** Host bytes held: the RAM copy plus the undo pages. */
  get bytes(): number {
    let n = this.shadow?.length ?? 0;
    for (const c of this.cps) n += c.undo.size * PAGE;
    return n;
  }

  /**
   * Record a checkpoint; ignored unless it is past the newest (a replay passes
   * old ones again), or at the newest's instruction count with `replace`
   * (input arrived there: the newer state supersedes it).
   */
  add(instret: bigint, state: unknown, ram: Uint8Array, replace = false): boolean {
    const last = this.cps.at(-1);
    const again = last !== undefined && instret === last.instret && replace;
    if (last && instret <= last.instret && !again) return false;
    if (!this.shadow || !last) {
      this.shadow = ram.slice();
    } else {
      // Pages that changed since the newest: their old content is what that checkpoint
      // (or, when it is replaced, the one before it) held.
      const undo = again ? this.cps.at(-2)?.undo ?? null : last.undo;
      const sh = Buffer.from(this.shadow.buffer, this.shadow.byteOffset, this.shadow.length);
      const now = Buffer.from(ram.buffer, ram.byteOffset, ram.length);
      for (let c = 0; c < now.length; c += CHUNK) {
        const end = Math.min(c + CHUNK, now.length);
        if (sh.subarray(c, end).equals(now.subarray(c, end))) continue;
        for (let p = c; p < end; p += PAGE) {
          const pe = Math.min(p + PAGE, end);
          if (sh.subarray(p, pe).equals(now.subarray(p, pe))) continue;
          if (undo && !undo.has(p / PAGE)) undo.set(p / PAGE, this.shadow.slice(p, pe));
          this.shadow.set(now.subarray(p, pe), p);
        }
      }
    }
    if (again) {
      last.state = structuredClone(state);
      return true;
    }
    this.cps.push({ instret, state: structuredClone(state), undo: new Map() });
    if (this.cps.length > this.maxCheckpoints) this.cps.shift();
    return true;
  }

  /** The newest checkpoint at or before `instret`, or null when that is before the oldest. */
  find(instret: bigint): { index: number; instret: bigint } | null {
    for (let i = this.cps.length - 1; i >= 0; i--) if (this.cps[i].instret <= instret) return { index: i, instret: this.cps[i].instret };
    return null;
  }

  state(index: number): unknown {
    return structuredClone(this.cps[index].state);
  }

  /** Fill `ram` with guest RAM as it was at checkpoint `index`. */
  loadRam(index: number, ram: Uint8Array): void {
    ram.set(this.shadow!);
    for (let k = this.cps.length - 2; k >= index; k--) {
      for (const [pg, data] of this.cps[k].undo) ram.set(data, pg * PAGE);
    }
  }

  /** Forget everything (the machine was replaced by a guest reboot). */
  clear(): void {
    this.cps.length = 0;
    this.shadow = null;
  }
}
