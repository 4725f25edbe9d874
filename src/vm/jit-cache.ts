// The translation cache on disk: one file of translation batches per guest (see
// src/jit/warm-start.ts for what is kept and what is checked before use). A
// file is a SHA-256 of its payload followed by the payload, read only if the
// two agree; it is written whole to a temporary name and renamed, so a reader
// sees an old file or a new one, never half of one, and VMs sharing the
// directory just replace each other's file for the same guest. The directory
// keeps at most MAX_FILES files.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { defaultCacheDir } from '../image/default-guest.js';
import { decodeBatches, WarmStart, type CachedBatch } from '../jit/warm-start.js';
import { RAM_HOST } from '../machine/layout.generated.js';
import type { VirtMachine } from '../machine/virt.js';

/** Cache files kept (one per guest: kernel, initrd, command line, memory size), and their total size. */
const MAX_FILES = 16;
const MAX_DIR_BYTES = 256 << 20;
/** A file larger than this is not read (a boot of the default guest makes about 20 MiB). */
const MAX_FILE_BYTES = 64 << 20;
const MAGIC = Buffer.from('TSVJITC\n');
const HEAD = MAGIC.length + 32;
/** Temporary files of writers that died are removed after this long. */
const STALE_TMP_MS = 3_600_000;
const SUFFIX = '.jitc';

/**
 * Whether a VM uses the cache: TSVISOR_JIT_CACHE=off turns it off for every VM,
 * =on turns it on for VMs that do not say (the daemon's); otherwise only
 * `--jit-cache on` does (it is off by default: see the README's Benchmark for why).
 */
export function jitCacheWanted(asked: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.TSVISOR_JIT_CACHE === 'off') return false;
  return asked ?? env.TSVISOR_JIT_CACHE === 'on';
}

/** Where the cache lives: TSVISOR_JIT_CACHE_DIR, or jit/ in the cache directory. */
export function jitCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.TSVISOR_JIT_CACHE_DIR;
  return dir ? resolve(dir) : join(defaultCacheDir(), 'jit');
}

/** What identifies a guest's boot: which files (by path, size and time) and how they are booted. */
export interface GuestIdentity {
  kernel: string;
  initrd?: string;
  bios?: string;
  append: string;
  memMiB: number;
}

function fileId(path: string | undefined): string {
  if (path === undefined) return '-';
  try {
    const st = statSync(path);
    return `${resolve(path)}:${st.size}:${st.mtimeMs}`;
  } catch {
    return `${resolve(path)}:?`;
  }
}

/** The file name for a guest and translator build (it only picks the file: what is in it is checked before use). */
export function cacheKey(g: GuestIdentity, buildId: Uint8Array): string {
  const text = JSON.stringify([1, fileId(g.kernel), fileId(g.initrd), fileId(g.bios), g.append, g.memMiB, Buffer.from(buildId).toString('hex')]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/**
 * What the generated code depends on besides the guest bytes: the translator's
 * and the core's build (the compiled files themselves, so any change to them
 * makes old files unusable) and the translator's switches (TLB lookup counting
 * with --stats; ordering fences with several harts).
 */
export function translatorBuildId(wasmPath: string, flags: { stats: boolean; harts: number }): Uint8Array {
  const h = createHash('sha256');
  for (const f of ['translate.js', 'wasm-builder.js', 'jit.js']) h.update(readFileSync(fileURLToPath(new URL(`../jit/${f}`, import.meta.url))));
  h.update(readFileSync(wasmPath));
  h.update(JSON.stringify(flags));
  return new Uint8Array(h.digest());
}

/** A VM's use of the cache: what it read, and how to write what it translated. */
export interface JitCacheRun {
  warm: WarmStart;
  file: string;
  /** Write the batches this run translated; returns an error text instead of throwing. */
  save(): string | null;
}

/** Read the file for this guest, if any, and start the machine's translator warm. */
export function startJitCache(m: VirtMachine, dir: string, guest: GuestIdentity, buildId: Uint8Array): JitCacheRun {
  const file = join(dir, cacheKey(guest, buildId) + SUFFIX);
  const ram = m.core.ram;
  const warm = new WarmStart(RAM_HOST, ram, buildId);
  let batches: CachedBatch[] = [];
  try {
    const st = statSync(file);
    if (st.size > MAX_FILE_BYTES) warm.note = `file not used: too large (${st.size} bytes)`;
    else {
      const r = unwrap(readFileSync(file), buildId, ram.length);
      if (typeof r === 'string') warm.note = `file not used: ${r}`;
      else batches = r;
    }
  } catch (e) {
    warm.note = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no file yet' : `file not used: ${(e as Error).message}`;
  }
  m.core.jit.startWarm(warm, batches);
  return {
    warm, file,
    save: () => {
      const payload = warm.encode();
      if (!payload) return null;
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
        writeFileSync(tmp, wrap(payload));
        renameSync(tmp, file);
        prune(dir, file);
        return null;
      } catch (e) {
        return `file not written: ${(e as Error).message}`;
      }
    },
  };
}

/** A cache file's content with its checksum (what save() writes). */
export function wrap(payload: Uint8Array): Buffer {
  return Buffer.concat([MAGIC, createHash('sha256').update(payload).digest(), payload]);
}

/** The payload of a cache file after its checksum is checked, or why it cannot be used. */
export function payloadOf(file: Buffer): Uint8Array | string {
  if (file.length < HEAD || !file.subarray(0, MAGIC.length).equals(MAGIC)) return 'not a translation cache file';
  const payload = file.subarray(HEAD);
  if (!createHash('sha256').update(payload).digest().equals(file.subarray(MAGIC.length, HEAD))) return 'checksum mismatch (truncated or damaged)';
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
}

/** The batches of a cache file, or why it cannot be used. */
export function unwrap(file: Buffer, buildId: Uint8Array, ramSize: number): CachedBatch[] | string {
  const payload = payloadOf(file);
  return typeof payload === 'string' ? payload : decodeBatches(payload, buildId, ramSize);
}

/** Keep the newest cache files (and `keep`) up to MAX_FILES and MAX_DIR_BYTES; drop temporary files left by writers that died. */
function prune(dir: string, keep: string): void {
  const now = Date.now();
  const files: { path: string; mtime: number; size: number }[] = [];
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (name.endsWith('.tmp')) {
        if (now - st.mtimeMs > STALE_TMP_MS) unlinkSync(path);
      } else if (name.endsWith(SUFFIX)) {
        if (path === keep) total += st.size;
        else files.push({ path, mtime: st.mtimeMs, size: st.size });
      }
    } catch {
      // another VM removed or replaced it meanwhile
    }
  }
  files.sort((a, b) => b.mtime - a.mtime);
  files.forEach((f, i) => {
    total += f.size;
    if (i < MAX_FILES - 1 && total <= MAX_DIR_BYTES) return;
    try {
      unlinkSync(f.path);
    } catch {
      // already gone
    }
  });
}
