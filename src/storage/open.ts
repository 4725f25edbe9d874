// Open a disk image by path: detect (or take) its format and hand back a BlockBackend.
// qcow2 support lives in ./qcow2.js and is loaded only when a qcow2 image is opened.

import { closeSync, openSync, readSync } from 'node:fs';
import { type BlockBackend, DiskError } from './backend.js';
import { RawDisk } from './raw.js';

export type DiskFormat = 'raw' | 'qcow2';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];

export interface OpenDiskOptions {
  format?: DiskFormat;
  readOnly?: boolean;
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
  openQcow2(path: string, opts: { readOnly: boolean }): BlockBackend | Promise<BlockBackend>;
}

export async function openDisk(path: string, opts: OpenDiskOptions = {}): Promise<BlockBackend> {
  const format = opts.format ?? detectFormat(path);
  const readOnly = opts.readOnly === true;
  if (format === 'raw') return RawDisk.open(path, { readOnly });
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
  return await mod.openQcow2(path, { readOnly });
}
