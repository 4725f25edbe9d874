// Every file one VM uses, and the lock each one takes while the VM runs:
// exclusive for a writable disk, shared for a read-only disk, for every
// backing file of a qcow2 disk, and for the kernel, initrd and firmware.
// The owner of the VM takes them before the VM starts and releases them when
// it has ended (closing the fds; a process that dies drops them too).

import { realpathSync } from 'node:fs';
import { DiskError } from './backend.js';
import { detectFormat, type DiskFormat } from './open.js';
import { imageChain } from './backing.js';
import { lockImage, type HeldLock, type LockMode } from './image-lock.js';

/** The parts of a VM's configuration that name files (src/vm/protocol.ts VmConfig has this shape). */
export interface VmFiles {
  kernel?: string;
  initrd?: string;
  bios?: string;
  disks?: { path: string; format?: DiskFormat; readOnly?: boolean; backingRoot?: string }[];
}

export interface PlannedLock {
  /** Real path. */
  path: string;
  mode: LockMode;
  /** How the VM uses the file, for messages: "disks[0]", "backing file of disks[0]", "kernel", ... */
  what: string;
}

/** The locks a VM needs; checks each disk's backing chain on the way (throws DiskError). */
export function planVmLocks(files: VmFiles): PlannedLock[] {
  const out: PlannedLock[] = [];
  (files.disks ?? []).forEach((d, i) => {
    const chain = imageChain(d.path, d.format ?? detectFormat(d.path), { root: d.backingRoot });
    for (const f of chain) {
      const top = f.depth === 0;
      out.push({ path: f.path, mode: top && d.readOnly !== true ? 'exclusive' : 'shared', what: top ? `disks[${i}]` : `backing file of disks[${i}]` });
    }
  });
  const boot: [string | undefined, string][] = [[files.kernel, 'kernel'], [files.initrd, 'initrd'], [files.bios, 'firmware']];
  for (const [path, what] of boot) if (path !== undefined) out.push({ path: realOrSame(path), mode: 'shared', what });
  // One VM using a file twice, once writable: its own locks would refuse it with a less helpful message.
  for (const [i, a] of out.entries()) {
    const b = out.find((o, j) => j !== i && o.path === a.path && (a.mode === 'exclusive' || o.mode === 'exclusive'));
    if (b) {
      const [w, other] = a.mode === 'exclusive' ? [a, b] : [b, a];
      throw new DiskError(`${w.what}: ${w.path} is also used as ${other.what} by this VM; it cannot be attached read-write too`);
    }
  }
  return out;
}

function realOrSame(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path; // locking it reports the problem
  }
}

/** Locks held for one VM. */
export interface VmLocks {
  readonly files: PlannedLock[];
  release(): void;
}

/** Take every lock the VM needs, or none: throws ImageLockedError (another VM holds a conflicting lock) or DiskError. */
export function lockVmImages(files: VmFiles): VmLocks {
  const plan = planVmLocks(files);
  const held: HeldLock[] = [];
  try {
    for (const p of plan) held.push(lockImage(p.path, p.mode, p.what));
  } catch (e) {
    for (const h of held) h.release();
    throw e;
  }
  return {
    files: plan,
    release() {
      for (const h of held.splice(0)) h.release();
    },
  };
}
