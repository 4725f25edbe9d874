// Freezing a running VM's disks at a snapshot: each chosen disk gets a new
// qcow2 overlay whose backing file is its current image (format given, never
// probed), the VM goes on writing the overlay, and the snapshot keeps naming
// the old image, which nothing writes any more. The overlays are made and
// opened before the snapshot is written, so a failure changes nothing.

import { existsSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import type { BlockBackend } from '../storage/backend.js';
import { detectFormat } from '../storage/open.js';
import { createQcow2, openQcow2 } from '../storage/qcow2.js';
import { SwappableDisk } from './migration/swappable-disk.js';
import type { VmDiskConfig } from './protocol.js';

/** Where a frozen disk's new overlay goes by default: next to it, named after the snapshot. */
export function overlayPathFor(image: string, snapshotName: string): string {
  const stem = basename(image).replace(/\.(qcow2|img|raw)$/, '');
  return join(dirname(resolvePath(image)), `${stem}.${snapshotName}.qcow2`);
}

export interface PreparedOverlays {
  /** Switch the disks to their overlays (cannot fail); returns the new disk configs. */
  commit(): { disk: number; path: string }[];
  /** Close and delete the overlays (the snapshot failed). */
  abandon(): void;
}

/**
 * Make and open the overlays `overlays[i]` for disks[i]; throws (having
 * removed what it made) when a disk is read-only, a path exists or an image
 * cannot be made.
 */
export function prepareOverlays(
  overlays: readonly (string | null)[],
  disks: readonly BlockBackend[],
  configs: VmDiskConfig[],
): PreparedOverlays {
  if (overlays.length > disks.length) throw new Error(`${overlays.length} overlays for ${disks.length} disks`);
  const made: { disk: number; path: string; backend: BlockBackend }[] = [];
  const abandon = () => {
    for (const m of made.splice(0)) {
      try {
        m.backend.close();
      } catch {
        // removed next anyway
      }
      rmSync(m.path, { force: true });
    }
  };
  try {
    for (const [i, o] of overlays.entries()) {
      if (o === null || o === undefined) continue;
      const disk = disks[i]!;
      const cfg = configs[i]!;
      if (disk.readOnly || !(disk instanceof SwappableDisk)) throw new Error(`disk ${i} is read-only: nothing to freeze`);
      if (!disk.backend) throw new Error(`disk ${i} is released (the VM is migrating)`);
      const path = resolvePath(o);
      if (existsSync(path)) throw new Error(`disk ${i}: the overlay ${path} already exists`);
      const base = resolvePath(cfg.path);
      const format = cfg.format ?? detectFormat(base);
      createQcow2(path, { size: disk.size, backing: base, backingFormat: format });
      const backend = openQcow2(path, { readOnly: false, backing: cfg.backingRoot !== undefined ? { root: cfg.backingRoot } : {} });
      made.push({ disk: i, path, backend });
    }
  } catch (e) {
    abandon();
    throw new Error(`disk overlay: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    commit() {
      const out: { disk: number; path: string }[] = [];
      for (const m of made.splice(0)) {
        (disks[m.disk] as SwappableDisk).switchTo(m.backend);
        // The overlay's format is known: the raw-probe guard was about the old image.
        configs[m.disk] = { ...configs[m.disk]!, path: m.path, format: 'qcow2', guardProbedRaw: undefined };
        out.push({ disk: m.disk, path: m.path });
      }
      return out;
    },
    abandon,
  };
}

/** A VM's disk list after a freeze: the switched disks name their overlays (qcow2). */
export function disksWithOverlays<D extends { path: string; format?: 'raw' | 'qcow2' }>(disks: readonly D[], overlays: readonly { disk: number; path: string }[]): D[] {
  const out = disks.map((d) => ({ ...d }));
  for (const o of overlays) if (out[o.disk]) out[o.disk] = { ...out[o.disk]!, path: o.path, format: 'qcow2' };
  return out;
}
