// The destination's images of a migration with --copy-storage: made empty in
// this daemon's images directory under the names the source gives (never over
// an existing file), filled from the stream's DISK frames, flushed and closed
// before the VM opens them, and deleted if the migration does not complete.

import { closeSync, ftruncateSync, openSync, realpathSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockBackend } from '../storage/backend.js';
import { openDisk, type DiskFormat } from '../storage/open.js';
import { createQcow2 } from '../storage/qcow2.js';
import { DISK_BLOCK, applyDiskBlocks, blockCount, decodeDiskBlocks } from '../vm/migration/disk-blocks.js';

/** A plain file name: no directories, nothing hidden, nothing odd. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$/;

export interface DiskCopies {
  /** Open the new images for writing. */
  open(): Promise<void>;
  /** Write one DISK frame's blocks (throws MigrationStreamError on a bad frame). */
  apply(payload: Uint8Array): void;
  /** Every block is in: flush and close the images (they stay). */
  finish(): void;
  /** The VM runs on them: discard() no longer deletes them. */
  keep(): void;
  /** The migration failed: close and delete the images made here. */
  discard(): void;
}

/** Check the source's list and make the empty images; throws a message for the source on a refusal. */
export function createDiskCopies(spec: unknown, sizes: readonly number[], imagesDir: string): DiskCopies {
  if (typeof spec !== 'object' || spec === null || !Array.isArray((spec as { disks?: unknown }).disks)) throw new Error('copyStorage: expected {disks: [{name, format}]}');
  const list = (spec as { disks: unknown[] }).disks;
  if (list.length !== sizes.length) throw new Error(`copyStorage: ${list.length} disks named for ${sizes.length} disk sizes`);
  const root = realpathSync(imagesDir);
  const wanted = list.map((d, i) => {
    const { name, format } = (d ?? {}) as { name?: unknown; format?: unknown };
    if (typeof name !== 'string' || !NAME.test(name) || name.endsWith('.')) throw new Error(`copyStorage: disk ${i}: '${String(name)}' is not a plain image file name (images in subdirectories cannot be copied)`);
    if (format !== 'raw' && format !== 'qcow2') throw new Error(`copyStorage: disk ${i}: format must be raw or qcow2`);
    return { path: join(root, name), format: format as DiskFormat, size: sizes[i] };
  });
  if (new Set(wanted.map((w) => w.path)).size !== wanted.length) throw new Error('copyStorage: two disks with one name');
  const made: string[] = [];
  /** Per disk and block: data was written into the new image. */
  const written = wanted.map((w) => new Uint8Array(blockCount(w.size)));
  const open: BlockBackend[] = [];
  const discard = () => {
    for (const b of open.splice(0)) {
      try {
        b.close();
      } catch {
        // deleted next anyway
      }
    }
    for (const p of made.splice(0)) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
  };
  try {
    for (const w of wanted) {
      // 'wx': never over a file that exists (shared storage needs no --copy-storage).
      let fd: number;
      try {
        fd = openSync(w.path, 'wx', 0o600);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(code === 'EEXIST' ? `copyStorage: ${w.path.slice(root.length + 1)} already exists on the destination` : `copyStorage: cannot create ${w.path}: ${(e as Error).message}`);
      }
      made.push(w.path);
      try {
        if (w.format === 'raw') ftruncateSync(fd, w.size);
      } finally {
        closeSync(fd);
      }
      if (w.format === 'qcow2') createQcow2(w.path, { size: w.size });
    }
  } catch (e) {
    discard();
    throw e;
  }
  return {
    async open() {
      for (const w of wanted) open.push(await openDisk(w.path, { format: w.format, readOnly: false }));
    },
    apply(payload) {
      const b = decodeDiskBlocks(payload, sizes);
      const disk = open[b.disk];
      if (!disk) throw new Error('copyStorage: the images are not open');
      const seen = written[b.disk];
      applyDiskBlocks(b, disk.size, (at, data) => {
        disk.write(at, data);
        seen[at / DISK_BLOCK] = 1;
      }, (at, len) => {
        // A new image reads as zeroes: only a block written before needs zeroing (it was sent again).
        if (seen[at / DISK_BLOCK]) disk.writeZeroes(at, len);
      });
    },
    finish() {
      for (const b of open.splice(0)) {
        b.flush();
        b.close();
      }
    },
    keep() {
      made.length = 0;
    },
    discard,
  };
}
