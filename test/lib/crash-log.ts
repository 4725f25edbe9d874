// Crash states of an image file, in the style of CrashMonkey/ALICE: a recording
// of every write(2) and fsync made to the file, and images rebuilt from it as a
// crash could leave them. Everything before the last fsync of a state is on
// disk; of the writes issued after it, any subset may have landed, in any order.

import { ImageFile } from '../../src/storage/qcow2-io.js';

export type LogEntry = { kind: 'write'; pos: number; data: Uint8Array } | { kind: 'sync' };

/** Records the writes and fsyncs ImageFile makes to one path. */
export class IoRecorder {
  readonly log: LogEntry[] = [];

  constructor(private readonly path: string) {}

  start(): void {
    ImageFile.recorder = {
      write: (path, pos, data) => {
        if (path === this.path) this.log.push({ kind: 'write', pos, data: Uint8Array.from(data) });
      },
      sync: (path) => {
        if (path === this.path) this.log.push({ kind: 'sync' });
      },
    };
  }

  stop(): void {
    ImageFile.recorder = undefined;
  }
}

/**
 * A crash state: entries [0, durable) are on disk (durable is 0 or just past a
 * sync); of the writes in [durable, issued), those listed in `landed` reached
 * the disk, in that order.
 */
export interface CrashState {
  durable: number;
  issued: number;
  landed: number[];
  what: string;
}

/** The file contents a crash state leaves. */
export function rebuild(initial: Uint8Array, log: LogEntry[], s: CrashState): Uint8Array {
  const writes: { pos: number; data: Uint8Array }[] = [];
  for (let i = 0; i < s.durable; i++) {
    const e = log[i];
    if (e.kind === 'write') writes.push(e);
  }
  for (const i of s.landed) {
    const e = log[i];
    if (e.kind === 'write') writes.push(e);
  }
  let size = initial.length;
  for (const w of writes) size = Math.max(size, w.pos + w.data.length);
  const out = new Uint8Array(size);
  out.set(initial);
  for (const w of writes) out.set(w.data, w.pos);
  return out;
}

/** Index just past each sync entry (0 included: nothing synced yet). */
export function syncPoints(log: LogEntry[]): number[] {
  const points = [0];
  log.forEach((e, i) => {
    if (e.kind === 'sync') points.push(i + 1);
  });
  return points;
}

/** The crash state of a plain prefix: everything issued before `p` landed, in order. */
export function prefixState(log: LogEntry[], p: number): CrashState {
  let durable = 0;
  for (let i = 0; i < p; i++) if (log[i].kind === 'sync') durable = i + 1;
  const landed: number[] = [];
  for (let i = durable; i < p; i++) landed.push(i);
  return { durable, issued: p, landed, what: `prefix ${p}` };
}

/**
 * A reordered state: the log up to a sync point is on disk, and a random subset
 * of the writes of the following epoch (up to the next sync) landed in a random order.
 */
export function reorderedState(log: LogEntry[], durable: number, rand: () => number): CrashState {
  let end = durable;
  while (end < log.length && log[end].kind !== 'sync') end++;
  const tail: number[] = [];
  for (let i = durable; i < end; i++) if (rand() < 0.5) tail.push(i);
  for (let i = tail.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [tail[i], tail[j]] = [tail[j], tail[i]];
  }
  return { durable, issued: end, landed: tail, what: `epoch after entry ${durable}: ${tail.length} of ${end - durable} writes, reordered` };
}

/** A small seeded generator (mulberry32), so every run checks the same states. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
