// Disk rules of the daemon (see docs/storage-qcow2.md, "Formats, backing files
// and locks"): a disk's format is fixed in the VM's definition when the VM is
// created and never guessed again from the file (a guest writes its raw disk
// and could make it look like qcow2); qcow2 backing files stay inside the
// images directory; a VM does not start while another one of this daemon uses
// one of its files in a conflicting way (the OFD locks taken at start catch
// the rest: VMs of `tsvisor run`, other daemons).

import { ApiError } from './validate.js';
import type { CreateVmRequest } from './types.js';
import { DiskError } from '../storage/backend.js';
import { detectFormat } from '../storage/open.js';
import { imageChain } from '../storage/backing.js';
import type { PlannedLock } from '../storage/vm-images.js';

type Disk = NonNullable<CreateVmRequest['disks']>[number];

/**
 * At create: give every disk without a format the one its file has now (the
 * only time tsvisor looks), then check its backing chain. Disk paths are
 * already real paths inside the images directory. Throws ApiError(400).
 */
export function fixDiskFormatsAtCreate(disks: Disk[] | undefined, imagesDir: string): void {
  disks?.forEach((d, i) => {
    try {
      d.format ??= detectFormat(d.path);
      imageChain(d.path, d.format, { root: imagesDir });
    } catch (e) {
      if (e instanceof DiskError) throw new ApiError(400, `disks[${i}].path: ${e.message}`);
      throw e;
    }
  });
}

/**
 * A definition stored before formats were fixed: each disk without a format
 * gets the one its file has now, once, and the caller saves it. Reading the
 * file here is the last guess tsvisor makes; a qcow2 image found this way
 * still has to pass the backing rules at every start. Returns what changed,
 * for the log, or [] when nothing did.
 */
export function fixStoredDiskFormats(config: CreateVmRequest): string[] {
  const notes: string[] = [];
  config.disks?.forEach((d, i) => {
    if (d.format !== undefined) return;
    let format: 'raw' | 'qcow2';
    try {
      format = detectFormat(d.path);
    } catch {
      format = 'raw'; // missing file: the VM will not start anyway; raw is never reinterpreted
    }
    d.format = format;
    notes.push(`disks[${i}] (${d.path}) is now fixed as ${format}`);
  });
  return notes;
}

const ROLE: Record<string, string> = { kernel: 'the kernel', initrd: 'the initrd', firmware: 'the firmware' };

function usage(l: PlannedLock): string {
  if (ROLE[l.what]) return ROLE[l.what];
  if (l.what.startsWith('backing file')) return 'a backing file';
  return l.mode === 'exclusive' ? 'a read-write disk' : 'a read-only disk';
}

/**
 * The first conflict between the files a VM is about to lock and those other
 * running VMs of this daemon hold, as a 409 naming the other VM; null if none.
 */
export function findLockConflict(mine: PlannedLock[], others: { name: string; files: PlannedLock[] }[]): ApiError | null {
  for (const m of mine) {
    for (const o of others) {
      for (const f of o.files) {
        if (f.path !== m.path || (m.mode === 'shared' && f.mode === 'shared')) continue;
        const verb = m.mode === 'exclusive' ? 'cannot be attached read-write' : `cannot be used as ${usage(m)}`;
        return new ApiError(409, `${m.what}: ${m.path} is ${usage(f)} of VM '${o.name}' and ${verb} while that VM runs`);
      }
    }
  }
  return null;
}
