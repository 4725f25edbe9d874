// A writer (and a small reader) for the "newc" cpio format, the format Linux
// expects for an initramfs. Pure: no Node APIs, works on Uint8Arrays.
//
// newc layout, per entry:
//   110-byte ASCII header: magic "070701" then 13 fields of 8 hex digits
//     ino mode uid gid nlink mtime filesize devmajor devminor
//     rdevmajor rdevminor namesize check
//   the path name, NUL-terminated, padded with NULs so header+name is a multiple of 4
//   the file data (or a symlink's target), padded with NULs to a multiple of 4
// The archive ends with an entry named "TRAILER!!!".

export type CpioEntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';

export interface CpioEntry {
  /** Path inside the archive, without a leading slash ("bin/busybox"); "/x" and "./x" are normalised. */
  path: string;
  type: CpioEntryType;
  /** Permission bits (the file type bits are derived from `type`). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  /** Contents of a regular file. */
  data?: Uint8Array;
  /** Target of a symlink. */
  target?: string;
  /** Device numbers of a char/block node. */
  major?: number;
  minor?: number;
}

const S_IFMT = 0o170000;
const TYPE_BITS: Record<CpioEntryType, number> = {
  fifo: 0o010000,
  char: 0o020000,
  dir: 0o040000,
  block: 0o060000,
  file: 0o100000,
  symlink: 0o120000,
};
const DEFAULT_PERM: Record<CpioEntryType, number> = {
  fifo: 0o644,
  char: 0o600,
  dir: 0o755,
  block: 0o600,
  file: 0o644,
  symlink: 0o777,
};

const MAGIC = '070701';
const HEADER_LEN = 110;
const TRAILER = 'TRAILER!!!';

/** Normalises an archive path: strips "./" and leading slashes, collapses "//". */
export function normalizeCpioPath(p: string): string {
  let s = p.replace(/\/+/g, '/');
  while (s.startsWith('./')) s = s.slice(2);
  s = s.replace(/^\/+/, '').replace(/\/+$/, '');
  if (s === '' || s === '.') return '.';
  if (s.split('/').some((c) => c === '..')) throw new Error(`cpio: path escapes the archive: ${p}`);
  return s;
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

const encoder = new TextEncoder();

/**
 * Serialises entries into a newc archive (uncompressed). Entries are written in
 * the given order; the kernel's unpacker needs a directory to appear before
 * anything inside it, so callers should list parents first (see `withParents`).
 */
export function writeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let ino = 721; // arbitrary non-zero start; every entry gets its own inode number
  const push = (b: Uint8Array): void => {
    chunks.push(b);
    total += b.length;
  };
  const zeros = new Uint8Array(4);

  const emit = (name: string, mode: number, e: Partial<CpioEntry>, body: Uint8Array, nlink: number): void => {
    const nameBytes = encoder.encode(name);
    const namesize = nameBytes.length + 1;
    const header =
      MAGIC +
      hex8(name === TRAILER ? 0 : ino++) +
      hex8(mode) +
      hex8(e.uid ?? 0) +
      hex8(e.gid ?? 0) +
      hex8(nlink) +
      hex8(e.mtime ?? 0) +
      hex8(body.length) +
      hex8(0) + // devmajor of the file system holding the file: irrelevant here
      hex8(0) +
      hex8(e.major ?? 0) +
      hex8(e.minor ?? 0) +
      hex8(namesize) +
      hex8(0); // check: only used by the "070702" crc variant
    push(encoder.encode(header));
    push(nameBytes);
    push(zeros.subarray(0, 1));
    const np = pad4(HEADER_LEN + namesize);
    if (np) push(zeros.subarray(0, np));
    if (body.length) {
      push(body);
      const dp = pad4(body.length);
      if (dp) push(zeros.subarray(0, dp));
    }
  };

  for (const e of entries) {
    const name = normalizeCpioPath(e.path);
    if (name === TRAILER) throw new Error('cpio: reserved entry name');
    const perm = (e.mode ?? DEFAULT_PERM[e.type]) & 0o7777;
    const mode = TYPE_BITS[e.type] | perm;
    let body: Uint8Array = new Uint8Array(0);
    if (e.type === 'file') body = e.data ?? body;
    else if (e.type === 'symlink') {
      if (e.target === undefined || e.target === '') throw new Error(`cpio: symlink without target: ${e.path}`);
      body = encoder.encode(e.target);
    } else if (e.data && e.data.length) throw new Error(`cpio: only regular files carry data: ${e.path}`);
    emit(name, mode, e, body, e.type === 'dir' ? 2 : 1);
  }
  emit(TRAILER, 0, {}, new Uint8Array(0), 1);

  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Returns the entries plus any missing parent directories (mode 0755), parents
 * first, keeping the entries' relative order otherwise. Duplicate paths: the
 * last one wins, at the position of the first.
 */
export function withParents(entries: readonly CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  const order: string[] = [];
  for (const e of entries) {
    const p = normalizeCpioPath(e.path);
    if (!byPath.has(p)) order.push(p);
    byPath.set(p, { ...e, path: p });
  }
  const out: CpioEntry[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    if (seen.has(p) || p === '.') return;
    const slash = p.lastIndexOf('/');
    if (slash > 0) add(p.slice(0, slash));
    seen.add(p);
    out.push(byPath.get(p) ?? { path: p, type: 'dir', mode: 0o755 });
  };
  for (const p of order) add(p);
  return out;
}

const decoder = new TextDecoder();

function typeFromMode(mode: number): CpioEntryType {
  switch (mode & S_IFMT) {
    case 0o010000: return 'fifo';
    case 0o020000: return 'char';
    case 0o040000: return 'dir';
    case 0o060000: return 'block';
    case 0o120000: return 'symlink';
    case 0o100000: return 'file';
    default: throw new Error(`cpio: unsupported file type in mode ${mode.toString(8)}`);
  }
}

/** Parses a newc archive (uncompressed) back into entries; stops at the trailer. */
export function readCpio(buf: Uint8Array): CpioEntry[] {
  const out: CpioEntry[] = [];
  let off = 0;
  const field = (i: number): number => {
    const s = decoder.decode(buf.subarray(off + 6 + i * 8, off + 14 + i * 8));
    if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`cpio: bad header field at offset ${off}`);
    return parseInt(s, 16);
  };
  for (;;) {
    if (off + HEADER_LEN > buf.length) throw new Error('cpio: truncated archive (no trailer)');
    const magic = decoder.decode(buf.subarray(off, off + 6));
    if (magic !== MAGIC && magic !== '070702') throw new Error(`cpio: bad magic at offset ${off}`);
    const mode = field(1);
    const uid = field(2);
    const gid = field(3);
    const mtime = field(5);
    const filesize = field(6);
    const major = field(9);
    const minor = field(10);
    const namesize = field(11);
    const nameStart = off + HEADER_LEN;
    const name = decoder.decode(buf.subarray(nameStart, nameStart + namesize - 1));
    let dataStart = nameStart + namesize;
    dataStart += pad4(dataStart);
    if (dataStart + filesize > buf.length) throw new Error('cpio: truncated entry data');
    const data = buf.subarray(dataStart, dataStart + filesize);
    off = dataStart + filesize;
    off += pad4(off);
    if (name === TRAILER) break;
    const type = typeFromMode(mode);
    const e: CpioEntry = { path: name, type, mode: mode & 0o7777, uid, gid, mtime };
    if (type === 'file') e.data = data;
    else if (type === 'symlink') e.target = decoder.decode(data);
    else if (type === 'char' || type === 'block') {
      e.major = major;
      e.minor = minor;
    }
    out.push(e);
  }
  return out;
}
