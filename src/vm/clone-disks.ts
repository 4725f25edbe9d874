// Disks of a clone: each writable disk of a snapshot gets a qcow2 overlay of its
// own (made with the project's qcow2 writer) in a directory of the clone's, so
// any number of clones share the snapshot's disks read-only and never write them.

import { mkdirSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { detectFormat, openDisk } from '../storage/open.js';
import { createQcow2 } from '../storage/qcow2.js';
import type { SnapshotConfig } from './snapshot.js';

type Disk = NonNullable<SnapshotConfig['disks']>[number];

/**
 * The clone's disk list: read-only disks as they are, writable ones replaced by
 * new overlays in `dir` (created if missing; default a new temporary directory).
 * Returns the list and the directory used.
 */
export async function cloneDisks(disks: readonly Disk[], dir?: string): Promise<{ disks: Disk[]; dir: string }> {
  const where = dir === undefined ? mkdtempSync(join(tmpdir(), 'tsvisor-clone-')) : resolvePath(dir);
  mkdirSync(where, { recursive: true });
  const out: Disk[] = [];
  for (const [i, d] of disks.entries()) {
    if (d.readOnly) {
      out.push({ ...d });
      continue;
    }
    const base = resolvePath(d.path);
    const format = d.format ?? detectFormat(base);
    // The overlay has the base's virtual size; the base is only opened to learn it.
    const probe = await openDisk(base, { format, readOnly: true, backing: d.backingRoot !== undefined ? { root: d.backingRoot } : {} });
    const size = probe.size;
    probe.close();
    const path = join(where, `disk${i}.qcow2`);
    if (existsSync(path)) throw new Error(`clone overlay ${path} already exists (use an empty directory)`);
    createQcow2(path, { size, backing: base, backingFormat: format });
    // guardProbedRaw concerned the base's format guess; the overlay's format is known.
    out.push({ ...d, path, format: 'qcow2', guardProbedRaw: undefined });
  }
  return { disks: out, dir: where };
}
