// The rules for qcow2 backing files, shared by the code that opens images
// (qcow2.ts) and the code that locks them (vm-images.ts):
//  - a backing file's format comes from the image's header (the backing format
//    extension), never from the backing file's own bytes: a raw file is guest
//    data, and read as qcow2 it could name any host file as its own backing;
//  - chains are at most MAX_BACKING_DEPTH files below the top image;
//  - under a confinement root (the daemon's images directory), every backing
//    file, symlinks followed, must lie inside that directory.

import { readSync, realpathSync, openSync, closeSync, fstatSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve as resolvePath, sep } from 'node:path';
import { DiskError } from './backend.js';
import { parseHeader, type Qcow2Header } from './qcow2-header.js';

export const MAX_BACKING_DEPTH = 16;

export interface BackingPolicy {
  /** When set, backing files must resolve (after realpath) inside this directory. */
  root?: string;
}

export type ImageFormat = 'raw' | 'qcow2';

/** Resolve a backing file name the way QEMU does: relative to the overlay's directory. */
export function resolveBackingPath(imagePath: string, backing: string): string {
  return isAbsolute(backing) ? backing : resolvePath(dirname(imagePath), backing);
}

/** Is the real path `real` inside the real directory `root` (and not `root` itself)? */
export function isInside(root: string, real: string): boolean {
  const rel = relative(root, real);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * The backing file of the image at `imagePath` (whose header is `h`, `depth`
 * files below the top image), checked against the rules; undefined when it
 * has none. The path returned is the real path (symlinks resolved).
 */
export function checkBacking(imagePath: string, h: Qcow2Header, depth: number, policy: BackingPolicy): { path: string; format: ImageFormat } | undefined {
  const name = h.backingFile;
  if (name === undefined) return undefined;
  if (depth + 1 > MAX_BACKING_DEPTH) {
    throw new DiskError(`qcow2: backing chain is longer than ${MAX_BACKING_DEPTH} files (at ${imagePath}; a loop?)`);
  }
  const format = h.backingFormat;
  if (format === undefined || format === '') {
    throw new DiskError(
      `qcow2: ${imagePath} names backing file '${name}' without its format, and tsvisor never guesses one ` +
        `(state it: qemu-img rebase -u -b '${name}' -F raw|qcow2 ${imagePath})`,
    );
  }
  if (format !== 'raw' && format !== 'qcow2') throw new DiskError(`qcow2: backing file '${name}' of ${imagePath} has unsupported format '${format}' (raw or qcow2)`);
  const named = resolveBackingPath(imagePath, name);
  let real: string;
  try {
    real = realpathSync(named);
  } catch (e) {
    throw new DiskError(`qcow2: cannot open backing file ${named} of ${imagePath} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (policy.root !== undefined && !isInside(realpathSync(policy.root), real)) {
    throw new DiskError(`qcow2: backing file '${name}' of ${imagePath} is outside the images directory`);
  }
  return { path: real, format };
}

/** Read and validate the qcow2 header of the file at `path`. */
export function readQcow2Header(path: string): Qcow2Header {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new DiskError(`cannot open image ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(Math.min(size, 2 * 1024 * 1024));
    let got = 0;
    while (got < head.length) {
      const n = readSync(fd, head, got, head.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return parseHeader(head.subarray(0, got), size);
  } finally {
    closeSync(fd);
  }
}

export interface ChainFile {
  /** Real path. */
  path: string;
  format: ImageFormat;
  /** 0 for the image itself, 1 for its backing file, ... */
  depth: number;
}

/** The image and every backing file below it, checked against the rules (without opening them as disks). */
export function imageChain(path: string, format: ImageFormat, policy: BackingPolicy): ChainFile[] {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new DiskError(`cannot open disk ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const out: ChainFile[] = [{ path: real, format, depth: 0 }];
  let cur = out[0];
  while (cur.format === 'qcow2') {
    const next = checkBacking(cur.path, readQcow2Header(cur.path), cur.depth, policy);
    if (!next) break;
    cur = { ...next, depth: cur.depth + 1 };
    out.push(cur);
  }
  return out;
}
