// Locks on image files, so two VMs never write one image, nor write an image
// that another VM reads (its disk, backing file, kernel, initrd or firmware).
// Readers take shared locks, a writable disk an exclusive one. The locks are
// OFD locks (fcntl F_OFD_SETLK) through the addon build/image-lock.node
// (native/image-lock.c): they hold across processes (the daemon, its
// process-isolated VMs, `tsvisor run`) and between two fds of one process,
// and the kernel drops them when the fd is closed or its process ends.
// Without the addon a table in this process stands in: it still keeps two VMs
// of one daemon (thread isolation) apart, but not VMs in different processes.

import { closeSync, existsSync, fstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DiskError } from './backend.js';

export type LockMode = 'shared' | 'exclusive';

interface LockAddon {
  lock(fd: number, exclusive: boolean): number;
}

let addon: LockAddon | null | undefined;
let whyNot = '';

function loadAddon(): LockAddon | null {
  if (addon !== undefined) return addon;
  const path = fileURLToPath(new URL('../../../build/image-lock.node', import.meta.url));
  if (!existsSync(path)) {
    whyNot = 'build/image-lock.node is missing (npm run build:native needs a C compiler and Node headers)';
    return (addon = null);
  }
  try {
    addon = createRequire(import.meta.url)(path) as LockAddon;
  } catch (e) {
    whyNot = `build/image-lock.node did not load: ${(e as Error).message}`;
    addon = null;
  }
  return addon;
}

/** Why image locks hold only inside this process, or '' when they are OFD locks. */
export function imageLocksLimitedReason(): string {
  loadAddon();
  return whyNot;
}

/** Fallback when the addon is missing: holders per file (dev:ino) in this process. */
const localHolders = new Map<string, { shared: number; exclusive: number }>();

/** A held lock: release() closes its fd (which drops an OFD lock) and is idempotent. */
export interface HeldLock {
  readonly path: string;
  readonly mode: LockMode;
  release(): void;
}

/** Why a lock was refused: the other holder's mode ('shared' or 'exclusive'). */
export class ImageLockedError extends DiskError {
  constructor(message: string, readonly path: string, readonly heldAs: LockMode) {
    super(message);
    this.name = 'ImageLockedError';
  }
}

/**
 * Lock `path` (a real path) for `mode`. `what` names the file in messages
 * ("disk", "backing file", "kernel", ...). Throws ImageLockedError when another
 * holder conflicts, DiskError when the file cannot be opened.
 */
export function lockImage(path: string, mode: LockMode, what: string): HeldLock {
  const exclusive = mode === 'exclusive';
  let fd: number;
  try {
    // A write lock needs an fd open for writing.
    fd = openSync(path, exclusive ? 'r+' : 'r');
  } catch (e) {
    throw new DiskError(`cannot open ${what} ${path} to lock it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const refuse = (heldAs: LockMode): never => {
    closeSync(fd);
    const holder = heldAs === 'exclusive' ? 'attached read-write' : 'in use read-only (as a disk, backing file, kernel, initrd or firmware)';
    const wanted = exclusive ? 'read-write' : 'read-only';
    throw new ImageLockedError(`${what}: ${path} is ${holder} by another VM or process; it cannot be used ${wanted} here`, path, heldAs);
  };
  const a = loadAddon();
  if (a) {
    const r = a.lock(fd, exclusive);
    if (r === 1) refuse('shared');
    if (r === 2) refuse('exclusive');
    if (r < 0) {
      closeSync(fd);
      throw new DiskError(`cannot lock ${what} ${path} (error ${-r})`);
    }
    let open = true;
    return {
      path,
      mode,
      release() {
        if (open) closeSync(fd);
        open = false;
      },
    };
  }
  const st = fstatSync(fd);
  const key = `${st.dev}:${st.ino}`;
  const h = localHolders.get(key) ?? { shared: 0, exclusive: 0 };
  if (h.exclusive > 0) refuse('exclusive');
  if (exclusive && h.shared > 0) refuse('shared');
  if (exclusive) h.exclusive++;
  else h.shared++;
  localHolders.set(key, h);
  let open = true;
  return {
    path,
    mode,
    release() {
      if (!open) return;
      open = false;
      closeSync(fd);
      if (exclusive) h.exclusive--;
      else h.shared--;
      if (h.shared === 0 && h.exclusive === 0) localHolders.delete(key);
    },
  };
}
