// Live migrations leaving this daemon, one per VM at a time: started by
// POST /v1/vms/{name}/migrate, watched with GET, cancelled with DELETE. The
// last result stays readable after the end (the VM itself is gone on success).

import type { Host } from './registry.js';
import { ApiError } from './validate.js';
import { VmHandle } from '../vm/vm-handle.js';
import { realpathSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { detectFormat, openDisk } from '../storage/open.js';
import {
  DEFAULT_DOWNTIME_LIMIT_MS, DEFAULT_TIMEOUT_S, migrate, newProgress, type MigrationProgress,
} from '../vm/migration/source.js';

export interface MigrateRequest {
  to: string;
  token: string;
  downtimeLimitMs?: number;
  timeoutS?: number;
  /** Copy the disks' contents to images of the destination's own (no shared storage). */
  copyStorage?: boolean;
}

const FIELDS = new Set(['to', 'token', 'downtimeLimitMs', 'timeoutS', 'copyStorage']);

export function validateMigrate(body: unknown): MigrateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected an object {to, token, ...}');
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).find((k) => !FIELDS.has(k));
  if (extra) throw new ApiError(400, `${extra}: unknown field`);
  if (typeof b.to !== 'string' || !/^http:\/\/[^\s/]+(:\d+)?\/?$/.test(b.to) || b.to.length > 300) throw new ApiError(400, 'to: the destination daemon as http://HOST:PORT');
  if (typeof b.token !== 'string' || b.token.length === 0 || b.token.length > 1024 || /[\s\0]/.test(b.token)) throw new ApiError(400, "token: the destination daemon's bearer token");
  const int = (k: string, lo: number, hi: number) => {
    const v = b[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ApiError(400, `${k}: an integer in ${lo}..${hi}`);
    return v;
  };
  if (b.copyStorage !== undefined && typeof b.copyStorage !== 'boolean') throw new ApiError(400, 'copyStorage: true or false');
  return { to: b.to, token: b.token, downtimeLimitMs: int('downtimeLimitMs', 1, 60_000), timeoutS: int('timeoutS', 1, 86_400), copyStorage: b.copyStorage === true };
}

interface Outgoing {
  progress: MigrationProgress;
  abort: AbortController;
  done: Promise<void>;
}

export class OutgoingMigrations {
  private readonly byName = new Map<string, Outgoing>();

  constructor(private readonly host: Host) {}

  async start(name: string, req: MigrateRequest): Promise<MigrationProgress> {
    const vm = this.host.get(name);
    const cur = this.byName.get(name);
    if (cur && !isFinal(cur.progress)) throw new ApiError(409, `VM '${name}' is already migrating`);
    const h = vm.handle;
    if (!(h instanceof VmHandle) || !h.running || vm.state !== 'running') {
      throw new ApiError(409, h && !(h instanceof VmHandle) ? `VM '${name}' runs in its own process: only thread-isolated VMs can migrate so far` : `VM '${name}' is ${vm.state}, not running`);
    }
    const def = vm.definition;
    const config = h.config;
    const progress = newProgress();
    const abort = new AbortController();
    const timeoutMs = (req.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000;
    const timer = setTimeout(() => abort.abort(`timed out after ${req.timeoutS ?? DEFAULT_TIMEOUT_S} s`), timeoutMs);
    timer.unref();
    const diskSizes: number[] = [];
    for (const d of config.disks ?? []) diskSizes.push(await diskSize(d.path, d.format, this.host.opts.imagesDir));
    if (this.byName.get(name) !== cur) throw new ApiError(409, `VM '${name}' is already migrating`);
    let definition: unknown = def.config;
    let copyStorage: { disks: { name: string; format: 'raw' | 'qcow2' }[] } | undefined;
    if (req.copyStorage) {
      // The destination makes images of its own under the same names in its images directory.
      const root = realpathSync(this.host.opts.imagesDir);
      const disks = (config.disks ?? []).map((d) => {
        const rel = relative(root, realpathSync(d.path));
        if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new ApiError(409, `disk ${d.path} is not in the images directory: it cannot be copied`);
        return { name: rel, format: d.format ?? detectFormat(d.path) };
      });
      copyStorage = { disks };
      // Every file the definition names, by its name in the images directory: the destination has its own.
      const inRoot = (p: unknown) => {
        if (typeof p !== 'string') return p;
        const rel = relative(root, p);
        return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? p : rel;
      };
      const stored = def.config as { disks?: { path: string }[]; kernel?: unknown; initrd?: unknown; systemMap?: unknown };
      definition = {
        ...stored,
        ...(stored.kernel !== undefined ? { kernel: inRoot(stored.kernel) } : {}),
        ...(stored.initrd !== undefined ? { initrd: inRoot(stored.initrd) } : {}),
        ...(stored.systemMap !== undefined ? { systemMap: inRoot(stored.systemMap) } : {}),
        disks: (stored.disks ?? []).map((d, i) => ({ ...d, path: disks[i].name })),
      };
    }
    const done = migrate({
      handle: h, to: req.to, token: req.token,
      hello: { name, memMiB: config.memMiB, definition, diskSizes, ...(copyStorage ? { copyStorage } : {}) },
      downtimeLimitMs: req.downtimeLimitMs ?? DEFAULT_DOWNTIME_LIMIT_MS,
      timeoutMs, signal: abort.signal, progress,
      releaseLocks: () => vm.releaseImagesForMigration(),
      retakeLocks: () => vm.retakeImagesAfterMigration(),
      finish: () => this.host.forgetMigratedAway(vm, req.to).catch((e: unknown) => this.host.opts.log(`${name}: ending the copy that left failed: ${e instanceof Error ? e.message : String(e)}`)),
    }).then(
      () => {},
      (e: unknown) => {
        const why = e instanceof Error ? e.message : String(e);
        this.host.opts.log(`${name}: migration to ${req.to} failed, the VM goes on here: ${why}`);
        this.host.events.add(name, 'migrated', `migration to ${req.to} ${progress.phase === 'cancelled' ? 'cancelled' : 'failed'}: ${why}; it runs on here`, 'warning');
      },
    ).finally(() => clearTimeout(timer));
    this.host.events.add(name, 'migrating', `live migration to ${req.to} started`);
    this.byName.set(name, { progress, abort, done });
    return progress;
  }

  /** The progress once the migration of `name` has ended (completed, failed or cancelled). */
  async finished(name: string): Promise<MigrationProgress> {
    const m = this.byName.get(name);
    if (!m) throw new ApiError(404, `VM '${name}' has no migration`);
    await m.done;
    return m.progress;
  }

  status(name: string): MigrationProgress {
    const m = this.byName.get(name);
    if (!m) throw new ApiError(404, `VM '${name}' has no migration`);
    return m.progress;
  }

  /** Cancel a running migration and wait until the VM runs here again. */
  async cancel(name: string): Promise<MigrationProgress> {
    const m = this.byName.get(name);
    if (!m || isFinal(m.progress)) throw new ApiError(409, `VM '${name}' is not migrating`);
    if (m.progress.phase === 'committing') throw new ApiError(409, `VM '${name}' is committing at the destination; it can no longer be cancelled`);
    m.abort.abort('cancelled by the user');
    await m.done;
    return m.progress;
  }
}

function isFinal(p: MigrationProgress): boolean {
  return p.phase === 'completed' || p.phase === 'failed' || p.phase === 'cancelled';
}

/** The virtual size of a disk image (opened read-only for a moment). */
export async function diskSize(path: string, format: 'raw' | 'qcow2' | undefined, imagesDir: string): Promise<number> {
  const b = await openDisk(path, { format, readOnly: true, backing: { root: imagesDir } });
  try {
    return b.size;
  } finally {
    b.close();
  }
}
