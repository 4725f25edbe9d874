// What the images directory holds, for the web console's create form: each
// regular file (one level of subdirectories too) with its size and a kind
// read from its first bytes. Only names relative to the directory are shown;
// create still checks every path it is given (validate.ts).

import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type ImageKind = 'kernel' | 'initrd' | 'qcow2' | 'disk' | 'system-map' | 'other';

export interface ImageEntry {
  name: string;
  size: number;
  kind: ImageKind;
}

const MAX_ENTRIES = 1000;

function head(path: string): Buffer {
  const buf = Buffer.alloc(64);
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n);
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The kind a file's first bytes (and, for a System.map, its name) suggest. */
export function imageKind(name: string, b: Buffer): ImageKind {
  if (/(^|\/)System\.map/.test(name)) return 'system-map';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x514649fb) return 'qcow2';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x7f454c46) return 'kernel'; // ELF
  if (b.length >= 56 && b.subarray(48, 53).toString('latin1') === 'RISCV') return 'kernel'; // RISC-V Image header
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'initrd'; // gzip
  if (b.length >= 6 && b.subarray(0, 6).toString('latin1') === '070701') return 'initrd'; // newc cpio
  if (b.length >= 4 && b.readUInt32BE(0) === 0x28b52ffd) return 'initrd'; // zstd
  if (/\.(img|raw|ext[234])$/i.test(name)) return 'disk';
  return 'other';
}

export function listImages(dir: string): ImageEntry[] {
  const out: ImageEntry[] = [];
  const walk = (rel: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(join(dir, rel)).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (out.length >= MAX_ENTRIES) return;
      if (n.startsWith('.')) continue;
      const name = rel ? `${rel}/${n}` : n;
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 1) walk(name, depth + 1);
      } else if (st.isFile()) {
        out.push({ name, size: st.size, kind: imageKind(name, head(path)) });
      }
    }
  };
  walk('', 0);
  return out;
}
