// Vectored positional I/O: one preadv/pwritev for a list of buffers instead of
// one system call per buffer. A 1 MiB guest request arrives as up to 256
// separate 4 KiB pages of guest RAM; read or written one by one that was 256
// calls into Node and the kernel per request.

import { readvSync, writevSync } from 'node:fs';

/** Buffers per call: Linux's IOV_MAX (libuv would cut a longer list short anyway). */
const IOV_MAX = 1024;

/** Total length of a buffer list. */
export function totalLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** The list after its first `skip` bytes (views, no copies). */
function after(bufs: readonly Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

/**
 * Read into `bufs` in order from file position `pos` until they are full or
 * the file ends; returns the bytes read (less than the total only at end of file).
 */
export function preadvAll(fd: number, bufs: readonly Uint8Array[], pos: number): number {
  const total = totalLength(bufs);
  let done = 0;
  let rest: readonly Uint8Array[] = bufs.filter((b) => b.length > 0);
  while (done < total) {
    const n = readvSync(fd, rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : (rest as Uint8Array[]), pos + done);
    if (n === 0) break;
    done += n;
    rest = after(rest, n);
  }
  return done;
}

/** Write all of `bufs` in order at file position `pos` (short writes are resumed). */
export function pwritevAll(fd: number, bufs: readonly Uint8Array[], pos: number): void {
  const total = totalLength(bufs);
  let done = 0;
  let rest: readonly Uint8Array[] = bufs.filter((b) => b.length > 0);
  while (done < total) {
    const n = writevSync(fd, rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : (rest as Uint8Array[]), pos + done);
    done += n;
    rest = after(rest, n);
  }
}

/**
 * Walks a buffer list front to back handing out views of the next n bytes, so
 * a request can be cut at cluster boundaries without copying.
 */
export class BufCursor {
  private i = 0;
  private off = 0;
  constructor(private readonly bufs: readonly Uint8Array[]) {}

  /** Views of the next `n` bytes (fewer if the list ends first). */
  take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (n > 0 && this.i < this.bufs.length) {
      const b = this.bufs[this.i];
      const k = Math.min(n, b.length - this.off);
      if (k > 0) out.push(b.subarray(this.off, this.off + k));
      n -= k;
      this.off += k;
      if (this.off >= b.length) {
        this.i++;
        this.off = 0;
      }
    }
    return out;
  }
}

/** Copy a list's bytes into one new array (for the paths that need the data in one piece). */
export function concat(bufs: readonly Uint8Array[]): Uint8Array {
  if (bufs.length === 1) return bufs[0];
  const out = new Uint8Array(totalLength(bufs));
  let p = 0;
  for (const b of bufs) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

/** Copy `src` across the list, front to back. */
export function spread(src: Uint8Array, bufs: readonly Uint8Array[]): void {
  let p = 0;
  for (const b of bufs) {
    b.set(src.subarray(p, p + b.length));
    p += b.length;
  }
}

/**
 * Buffers for consecutive ranges of a file, gathered so that one preadv or
 * pwritev serves a run of clusters; a range that does not follow the last
 * one starts a new run after the gathered one is done.
 */
export class HostRun {
  private bufs: Uint8Array[] = [];
  private start = 0;
  private end = -1;

  constructor(private readonly io: (at: number, bufs: Uint8Array[]) => void) {}

  /** `n` bytes in `pieces` go at (or come from) file offset `at`. */
  add(at: number, pieces: readonly Uint8Array[], n: number): void {
    if (at !== this.end) {
      this.flush();
      this.start = at;
    }
    for (const p of pieces) this.bufs.push(p);
    this.end = at + n;
  }

  /** Do the gathered run's I/O (once: it is forgotten before the call). */
  flush(): void {
    const b = this.bufs;
    this.bufs = [];
    this.end = -1;
    if (b.length) this.io(this.start, b);
  }
}
