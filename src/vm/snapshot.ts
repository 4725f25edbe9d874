// Snapshot files: a directory with the machine's state and configuration
// (snapshot.json: magic, format version, a SHA-256 over the payload) and its
// guest RAM (memory.bin: a sparse file as large as RAM, holding only the pages
// that are not zero). docs/snapshot-format.md describes the format. A snapshot
// is untrusted input, like a disk image: everything read here is checked, and
// problems are SnapshotErrors with a message for the user.

import { createHash } from 'node:crypto';
import {
  closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readSync, renameSync,
  statSync, writeFileSync, writeSync, readFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { MachineState } from '../machine/virt.js';
import type { VmConfig } from './protocol.js';
import { hostMemory } from './host-memory.js';

export const SNAPSHOT_MAGIC = 'tsvisor-snapshot';
/** Bump on any change a reader of the previous version would misread. 2: the CPU gained PMP, trigger and counter fields (version 1 files still load). */
export const SNAPSHOT_VERSION = 2;
export const STATE_FILE = 'snapshot.json';
export const MEMORY_FILE = 'memory.bin';
export const PAGE_SIZE = 4096;
/** The state file is small (devices, registers); anything larger is refused unread. */
const MAX_STATE_BYTES = 64 * 1024 * 1024;

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/** What a VM was started with, as far as a restore needs it (host paths included). */
export type SnapshotConfig = Omit<VmConfig, 'wasmPath' | 'debug' | 'stats' | 'restore' | 'clone' | 'snapshotAt' | 'inputScript'>;

export interface SnapshotPayload {
  createdAt: string;
  /** Guest instructions retired when the snapshot was taken. */
  instret: number;
  config: SnapshotConfig;
  machine: MachineState;
  memory: { file: string; bytes: number; pageSize: number; dataPages: number };
}

export interface SnapshotFile {
  magic: string;
  version: number;
  sha256: string;
  payload: SnapshotPayload;
}

/**
 * Guest RAM as pages: what a snapshot writes, and what live migration sends.
 * Migration adds a dirty log on top (pages written since the last pass); a
 * snapshot is the first pass: every page that is not zero.
 */
export interface GuestPages {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Runs [first page, page count] of pages that hold anything but zeros, in order. */
  nonZeroRuns(): Generator<[number, number]>;
  /** A view of `count` pages from `first` (no copy). */
  pages(first: number, count: number): Uint8Array;
}

export function guestPages(ram: Uint8Array): GuestPages {
  // 32-bit words: BigUint64Array would allocate a BigInt per element read.
  const words = new Int32Array(ram.buffer, ram.byteOffset, ram.byteLength >>> 2);
  const perPage = PAGE_SIZE >>> 2;
  const pageCount = Math.floor(ram.byteLength / PAGE_SIZE);
  const isZero = (p: number) => {
    for (let i = p * perPage, e = i + perPage; i < e; i++) if (words[i] !== 0) return false;
    return true;
  };
  /** Per page: holds data. Native when the addon is there (a fast scan that skips pages the host never backed). */
  const flags = (): Uint8Array => {
    const hm = hostMemory();
    if (hm && ram.byteOffset % PAGE_SIZE === 0) {
      try {
        return hm.dataPages(ram.subarray(0, pageCount * PAGE_SIZE));
      } catch {
        // host pages of another size: scan here
      }
    }
    const f = new Uint8Array(pageCount);
    for (let p = 0; p < pageCount; p++) f[p] = isZero(p) ? 0 : 1;
    return f;
  };
  return {
    pageSize: PAGE_SIZE,
    pageCount,
    *nonZeroRuns() {
      const f = flags();
      let start = -1;
      for (let p = 0; p <= pageCount; p++) {
        const data = p < pageCount && f[p] === 1;
        if (data && start < 0) start = p;
        else if (!data && start >= 0) {
          yield [start, p - start];
          start = -1;
        }
      }
    },
    pages(first, count) {
      return ram.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE);
    },
  };
}

function digest(payloadJson: string): string {
  return createHash('sha256').update(payloadJson).digest('hex');
}

/** A directory a snapshot may be written to: new, or existing and empty. */
export function prepareSnapshotDir(dir: string): void {
  if (existsSync(dir)) {
    let st;
    try {
      st = statSync(dir);
    } catch (e) {
      throw new SnapshotError(`cannot use snapshot directory ${dir}: ${(e as Error).message}`);
    }
    if (!st.isDirectory()) throw new SnapshotError(`snapshot path ${dir} exists and is not a directory`);
    if (readdirSync(dir).length > 0) throw new SnapshotError(`snapshot directory ${dir} is not empty`);
    return;
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new SnapshotError(`cannot create snapshot directory ${dir}: ${(e as Error).message}`);
  }
}

/**
 * Write a snapshot: memory first, the state file last (through a rename), so a
 * directory without snapshot.json is an interrupted snapshot and is refused.
 * Returns the bytes of guest data written.
 */
export function writeSnapshot(dir: string, p: Omit<SnapshotPayload, 'memory' | 'createdAt'>, ram: Uint8Array): { dataPages: number } {
  prepareSnapshotDir(dir);
  const pages = guestPages(ram);
  const memPath = join(dir, MEMORY_FILE);
  let dataPages = 0;
  const fd = openSync(memPath, 'w', 0o600);
  try {
    // Sparse: the file has RAM's size, zero pages stay holes.
    ftruncateSync(fd, ram.byteLength);
    for (const [first, count] of pages.nonZeroRuns()) {
      const buf = pages.pages(first, count);
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, first * PAGE_SIZE + done);
      dataPages += count;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const payload: SnapshotPayload = {
    createdAt: new Date().toISOString(),
    ...p,
    memory: { file: MEMORY_FILE, bytes: ram.byteLength, pageSize: PAGE_SIZE, dataPages },
  };
  const payloadJson = JSON.stringify(payload);
  const file = `{"magic":${JSON.stringify(SNAPSHOT_MAGIC)},"version":${SNAPSHOT_VERSION},"sha256":"${digest(payloadJson)}","payload":${payloadJson}}\n`;
  const tmp = join(dir, `${STATE_FILE}.tmp`);
  writeFileSync(tmp, file, { mode: 0o600 });
  const sfd = openSync(tmp, 'r');
  fsyncSync(sfd);
  closeSync(sfd);
  renameSync(tmp, join(dir, STATE_FILE));
  return { dataPages };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length < 4096 && !v.includes('\0');

/** Why a saved VM configuration is unusable, or null. Paths are checked when they are opened. */
export function checkSnapshotConfig(c: unknown): string | null {
  if (!isObj(c)) return 'config is not an object';
  if (!isStr(c.kernel)) return 'config.kernel must be a path';
  for (const k of ['initrd', 'bios'] as const) if (c[k] !== undefined && !isStr(c[k])) return `config.${k} must be a path`;
  if (typeof c.append !== 'string' || c.append.length > 4096) return 'config.append must be a string';
  if (typeof c.memMiB !== 'number' || !Number.isInteger(c.memMiB) || c.memMiB < 16 || c.memMiB > 3584) return 'config.memMiB must be an integer in 16..3584';
  if (typeof c.deterministic !== 'boolean') return 'config.deterministic must be a boolean';
  if (c.cpus !== undefined && (!Number.isInteger(c.cpus) || (c.cpus as number) < 1 || (c.cpus as number) > 8)) return 'config.cpus must be an integer in 1..8';
  for (const k of ['jit', 'rng', 'virtioConsole', 'powerButton'] as const) if (c[k] !== undefined && typeof c[k] !== 'boolean') return `config.${k} must be a boolean`;
  if (c.disks !== undefined) {
    if (!Array.isArray(c.disks) || c.disks.length > 6) return 'config.disks must be at most 6 disks';
    for (const d of c.disks) {
      if (!isObj(d) || !isStr(d.path)) return 'each disk needs a path';
      if (d.format !== undefined && d.format !== 'raw' && d.format !== 'qcow2') return 'disk format must be raw or qcow2';
      if (d.readOnly !== undefined && typeof d.readOnly !== 'boolean') return 'disk readOnly must be a boolean';
      if (d.serial !== undefined && (typeof d.serial !== 'string' || d.serial.length > 20)) return 'disk serial must be at most 20 characters';
      if (d.limits !== undefined && !isObj(d.limits)) return 'disk limits must be an object';
    }
  }
  if (c.balloon !== undefined && typeof c.balloon !== 'boolean' && !isObj(c.balloon)) return 'config.balloon must be a boolean or settings';
  if (c.name !== undefined && !isStr(c.name)) return 'config.name must be a string';
  if (c.nicSpecs !== undefined && (!Array.isArray(c.nicSpecs) || c.nicSpecs.length > 4)) return 'config.nicSpecs must be at most 4 NICs';
  if (c.systemMap !== undefined && !isStr(c.systemMap)) return 'config.systemMap must be a path';
  if (c.stallTimeoutMs !== undefined && (typeof c.stallTimeoutMs !== 'number' || !Number.isSafeInteger(c.stallTimeoutMs) || c.stallTimeoutMs < 0)) return 'config.stallTimeoutMs must be a whole number of ms';
  return null;
}

/**
 * Read and check a snapshot's state file and the size of its memory file. The
 * device states inside are checked by the devices when the machine is restored.
 */
export function readSnapshot(dir: string): SnapshotPayload {
  const statePath = join(dir, STATE_FILE);
  let text: string;
  try {
    const st = statSync(statePath);
    if (!st.isFile()) throw new SnapshotError(`${statePath} is not a file`);
    if (st.size > MAX_STATE_BYTES) throw new SnapshotError(`${statePath} is larger than ${MAX_STATE_BYTES} bytes`);
    text = readFileSync(statePath, 'utf8');
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SnapshotError(`not a snapshot (or an unfinished one): ${statePath} is missing`);
    throw new SnapshotError(`cannot read ${statePath}: ${(e as Error).message}`);
  }
  let file: unknown;
  try {
    file = JSON.parse(text);
  } catch {
    throw new SnapshotError(`${statePath} is corrupt (not valid JSON; truncated?)`);
  }
  if (!isObj(file) || file.magic !== SNAPSHOT_MAGIC) throw new SnapshotError(`${statePath} is not a tsvisor snapshot (bad magic)`);
  if (typeof file.version !== 'number' || !Number.isInteger(file.version)) throw new SnapshotError(`${statePath}: bad format version`);
  if (file.version > SNAPSHOT_VERSION) {
    throw new SnapshotError(`snapshot format version ${file.version} is newer than this tsvisor reads (${SNAPSHOT_VERSION}); use a newer tsvisor`);
  }
  if (file.version < 1) throw new SnapshotError(`snapshot format version ${file.version} is not supported`);
  if (!isObj(file.payload) || typeof file.sha256 !== 'string') throw new SnapshotError(`${statePath}: payload or checksum missing`);
  if (digest(JSON.stringify(file.payload)) !== file.sha256) throw new SnapshotError(`${statePath} is corrupt (checksum mismatch)`);
  const p = file.payload;
  const bad = checkSnapshotConfig(p.config);
  if (bad) throw new SnapshotError(`snapshot: ${bad}`);
  // Snapshots taken before the buttons existed have no virtio-input device: none is added.
  const config = { ...(p.config as SnapshotConfig), powerButton: (p.config as SnapshotConfig).powerButton === true };
  if (!isObj(p.machine)) throw new SnapshotError('snapshot: machine state missing');
  if (typeof p.instret !== 'number' || !Number.isSafeInteger(p.instret) || p.instret < 0) throw new SnapshotError('snapshot: bad instret');
  const m = p.memory;
  const ramBytes = config.memMiB * 1024 * 1024;
  if (!isObj(m) || m.file !== MEMORY_FILE || m.bytes !== ramBytes || m.pageSize !== PAGE_SIZE) {
    throw new SnapshotError(`snapshot: memory must be ${MEMORY_FILE} of ${ramBytes} bytes in ${PAGE_SIZE}-byte pages`);
  }
  const memPath = join(dir, MEMORY_FILE);
  let size: number;
  try {
    const st = statSync(memPath);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch (e) {
    throw new SnapshotError(`snapshot memory file ${memPath} is missing or unreadable (${(e as Error).message})`);
  }
  if (size !== ramBytes) throw new SnapshotError(`snapshot memory file ${memPath} has ${size} bytes, expected ${ramBytes} (truncated?)`);
  return { ...(p as unknown as SnapshotPayload), config };
}

/** Snapshots read lately, by directory, with the identity of their files when read. */
const recentlyRead = new Map<string, { key: string; payload: SnapshotPayload }>();

/**
 * readSnapshot() for a caller that reads the same snapshots again and again
 * (the daemon, at every start of a VM defined from one): a snapshot whose
 * state and memory files are unchanged (inode, size, modification time) is
 * not read, hashed and checked again. The payload is shared: never modify it.
 */
export function readSnapshotCached(dir: string): SnapshotPayload {
  let key: string;
  try {
    key = [STATE_FILE, MEMORY_FILE].map((f) => {
      const st = statSync(join(dir, f));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    }).join('/');
  } catch {
    recentlyRead.delete(dir);
    return readSnapshot(dir); // its error says what is missing
  }
  const hit = recentlyRead.get(dir);
  if (hit && hit.key === key) return hit.payload;
  const payload = readSnapshot(dir);
  recentlyRead.delete(dir);
  if (recentlyRead.size >= 16) recentlyRead.delete(recentlyRead.keys().next().value!);
  recentlyRead.set(dir, { key, payload });
  return payload;
}

/**
 * Fill guest RAM from the snapshot's memory file: mapped copy-on-write through
 * the native addon when it is there and RAM is host-page aligned (nothing is
 * read up front), else read in full. Returns which way it went.
 */
export function loadSnapshotMemory(dir: string, ram: Uint8Array): 'mapped' | 'read' {
  const memPath = join(dir, MEMORY_FILE);
  const hm = hostMemory();
  if (hm) {
    try {
      hm.mapFile(ram, memPath);
      return 'mapped';
    } catch {
      // Not aligned, or the mapping failed: read it instead.
    }
  }
  const fd = openSync(memPath, 'r');
  try {
    if (fstatSync(fd).size < ram.byteLength) throw new SnapshotError(`${memPath} is shorter than guest RAM`);
    let done = 0;
    while (done < ram.byteLength) {
      const n = readSync(fd, ram, done, Math.min(ram.byteLength - done, 1 << 24), done);
      if (n <= 0) throw new SnapshotError(`${memPath}: unexpected end of file`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return 'read';
}
