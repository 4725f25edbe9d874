// Helpers for the Debian root disk (src/image/rootfs.ts): copying a raw image
// into a qcow2 image without its zero clusters, and recognising a root disk
// made by `tsvisor image build --rootfs` from its ext4 volume label.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { BlockBackend } from '../storage/backend.js';
import { createQcow2, openQcow2 } from '../storage/qcow2.js';

/** The ext4 volume label the builder gives the root file system. */
export const ROOTFS_LABEL = 'tsvisor-root';

/** Extra kernel arguments `tsvisor run` adds for a root disk when no --append is given. */
export const ROOTFS_APPEND = 'root=/dev/vda rw';

const EXT_SUPERBLOCK = 1024;
const EXT_MAGIC_OFF = 0x38;
const EXT_LABEL_OFF = 0x78;

/** The ext2/3/4 volume label of the file system at the start of `disk`, or undefined if it holds none. */
export function readExtLabel(disk: BlockBackend): string | undefined {
  if (disk.size < EXT_SUPERBLOCK + 1024) return undefined;
  const sb = new Uint8Array(1024);
  disk.read(EXT_SUPERBLOCK, sb);
  if (sb[EXT_MAGIC_OFF] !== 0x53 || sb[EXT_MAGIC_OFF + 1] !== 0xef) return undefined;
  const raw = sb.subarray(EXT_LABEL_OFF, EXT_LABEL_OFF + 16);
  const end = raw.indexOf(0);
  return Buffer.from(raw.subarray(0, end < 0 ? 16 : end)).toString('latin1');
}

/** Does `disk` hold a root file system made by the rootfs builder? */
export function isRootfsDisk(disk: BlockBackend): boolean {
  return readExtLabel(disk) === ROOTFS_LABEL;
}

function allZero(b: Uint8Array): boolean {
  // Compare 8 bytes at a time where the alignment allows.
  const words = b.byteOffset % 8 === 0 ? new BigUint64Array(b.buffer, b.byteOffset, b.length >> 3) : undefined;
  let i = 0;
  if (words) {
    for (const w of words) if (w !== 0n) return false;
    i = words.length << 3;
  }
  for (; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export interface ConvertResult {
  /** Virtual size (the raw file's size). */
  size: number;
  /** Bytes of clusters that held data and were copied. */
  copied: number;
}

/**
 * Writes a new qcow2 image `out` (it must not exist) with the contents of the
 * raw image `raw`, allocating only clusters that are not entirely zero.
 */
export function rawToQcow2(raw: string, out: string, clusterBits = 16,
  onProgress?: (done: number, total: number) => void): ConvertResult {
  const fd = openSync(raw, 'r');
  try {
    const size = fstatSync(fd).size;
    createQcow2(out, { size, clusterBits });
    const img = openQcow2(out);
    const cs = 1 << clusterBits;
    const chunk = new Uint8Array(Math.max(cs, 4 << 20));
    let copied = 0;
    try {
      for (let pos = 0; pos < size;) {
        const want = Math.min(chunk.length, size - pos);
        let got = 0;
        while (got < want) {
          const n = readSync(fd, chunk, got, want - got, pos + got);
          if (n === 0) break;
          got += n;
        }
        chunk.fill(0, got, want);
        for (let o = 0; o < want; o += cs) {
          const c = chunk.subarray(o, Math.min(o + cs, want));
          if (allZero(c)) continue;
          img.write(pos + o, c);
          copied += c.length;
        }
        pos += want;
        onProgress?.(pos, size);
      }
      img.flush();
    } finally {
      img.close();
    }
    return { size, copied };
  } finally {
    closeSync(fd);
  }
}

/**
 * For `tsvisor run` without --append: the kernel arguments that boot `disk`
 * (the first --disk) as the root file system when it is a root disk made by
 * the builder, else undefined. Errors opening the disk count as "not a root disk".
 */
export async function rootfsAppendFor(disk: { path: string; format?: 'raw' | 'qcow2' }): Promise<string | undefined> {
  const { openDisk } = await import('../storage/open.js');
  let d: BlockBackend | undefined;
  try {
    d = await openDisk(disk.path, { format: disk.format, readOnly: true });
    return isRootfsDisk(d) ? ROOTFS_APPEND : undefined;
  } catch {
    return undefined;
  } finally {
    d?.close();
  }
}
