// Open a disk image by path: take (or, for files the user owns, detect) its
// format and hand back a BlockBackend.
// qcow2 support lives in ./qcow2.js and is loaded only when a qcow2 image is opened.

import { closeSync, openSync, readSync } from 'node:fs';
import { type BlockBackend, DiskError, type SeekData } from './backend.js';
import { RawDisk } from './raw.js';
import { ProbedRawGuard } from './probe-guard.js';
import type { BackingPolicy } from './backing.js';

export type DiskFormat = 'raw' | 'qcow2';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];

export interface OpenDiskOptions {
  /** The image's format; guessed from its first bytes when missing (only for files the user owns). */
  format?: DiskFormat;
  readOnly?: boolean;
  /** Rules for qcow2 backing files (confinement to a directory). */
  backing?: BackingPolicy;
  /** The format was guessed as raw: refuse writes that would make it look like qcow2 (probe-guard.ts). */
  guardProbedRaw?: boolean;
  /** Lets a raw image tell its holes (BlockBackend.mayHoldData); the native addon's lseek. */
  seekData?: SeekData;
}

/** "QFI\xfb" */
const QCOW2_MAGIC = [0x51, 0x46, 0x49, 0xfb];

/** The format of the image at `path`, from its first bytes. */
export function detectFormat(path: string): DiskFormat {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DiskError(`disk file not found: ${path}`);
    throw new DiskError(`cannot open disk ${path}: ${code ?? String(e)}`);
  }
  try {
    const head = new Uint8Array(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && QCOW2_MAGIC.every((b, i) => head[i] === b) ? 'qcow2' : 'raw';
  } finally {
    closeSync(fd);
  }
}

interface Qcow2Module {
  openQcow2(path: string, opts: { readOnly: boolean; backing?: BackingPolicy }): BlockBackend | Promise<BlockBackend>;
}

export async function openDisk(path: string, opts: OpenDiskOptions = {}): Promise<BlockBackend> {
  const format = opts.format ?? detectFormat(path);
  const readOnly = opts.readOnly === true;
  if (format === 'raw') {
    const raw = RawDisk.open(path, { readOnly, seekData: opts.seekData });
    return opts.guardProbedRaw === true && !readOnly ? new ProbedRawGuard(raw) : raw;
  }
  if (format !== 'qcow2') throw new DiskError(`unknown disk format '${String(format)}' (raw or qcow2)`);
  let mod: Qcow2Module;
  try {
    // A variable specifier keeps tsc from requiring the module at build time.
    const spec = './qcow2.js';
    mod = (await import(spec)) as Qcow2Module;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND') throw new DiskError(`qcow2 images are not supported by this build (${path})`);
    throw e;
  }
  if (typeof mod.openQcow2 !== 'function') throw new DiskError(`qcow2 images are not supported by this build (${path})`);
  return await mod.openQcow2(path, { readOnly, backing: opts.backing });
}
