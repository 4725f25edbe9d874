// The daemon's snapshots: directories under STATE_DIR/snapshots, each written
// by PUT /v1/vms/NAME/snapshot. Listed with what a user needs to pick one (and
// why one cannot be used), deleted only when no VM is defined from it.

import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readSnapshot, type SnapshotPayload } from '../vm/snapshot.js';
import { ApiError } from './validate.js';
import { SNAPSHOT_NAME_PATTERN } from './schemas.js';

const NAME_RE = new RegExp(SNAPSHOT_NAME_PATTERN);

export interface SnapshotInfo {
  name: string;
  createdAt?: string;
  memory?: number;
  instret?: number;
  dataPages?: number;
  deterministic?: boolean;
  disks?: string[];
  /** NICs a VM restored from it must have, with their MACs (the web form uses them). */
  nics?: number;
  macs?: string[];
  usedBy: string[];
  error?: string;
}

export class SnapshotCatalog {
  constructor(
    readonly dir: string,
    /** Names of the VMs defined from a snapshot. */
    private readonly usedBy: (snapshot: string) => string[],
  ) {}

  /** The directory of an existing snapshot; 400 for a bad name, 404 for none. */
  pathOf(name: string): string {
    if (!NAME_RE.test(name)) throw new ApiError(400, 'snapshot: a name of letters, digits, _ . - (at most 63)');
    const p = join(this.dir, name);
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      // missing
    }
    if (!isDir) throw new ApiError(404, `no snapshot named '${name}'`);
    return p;
  }

  /** Read and check a snapshot; a broken one is a 409 with the reason. */
  read(name: string): SnapshotPayload {
    const p = this.pathOf(name);
    try {
      return readSnapshot(p);
    } catch (e) {
      throw new ApiError(409, `snapshot '${name}' cannot be used: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  describe(name: string): SnapshotInfo {
    const p = this.pathOf(name);
    const usedBy = this.usedBy(name);
    let s: SnapshotPayload;
    try {
      s = readSnapshot(p);
    } catch (e) {
      return { name, usedBy, error: e instanceof Error ? e.message : String(e) };
    }
    return {
      name,
      createdAt: s.createdAt,
      memory: s.config.memMiB,
      instret: s.instret,
      dataPages: s.memory.dataPages,
      deterministic: s.config.deterministic,
      disks: (s.config.disks ?? []).map((d) => d.path),
      ...nicMacs(s),
      usedBy,
    };
  }

  list(): SnapshotInfo[] {
    if (!existsSync(this.dir)) return [];
    const names = readdirSync(this.dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && NAME_RE.test(e.name))
      .map((e) => e.name)
      .sort();
    return names.map((n) => this.describe(n));
  }

  /** Delete a snapshot nothing is defined from (the disk images it names stay). */
  remove(name: string): void {
    const p = this.pathOf(name);
    const users = this.usedBy(name);
    if (users.length > 0) throw new ApiError(409, `snapshot '${name}' is used by ${users.join(', ')}; delete those VMs first`);
    rmSync(p, { recursive: true, force: true });
  }
}

/** The saved NICs and their MACs; a restored NIC must keep its MAC. */
function nicMacs(s: SnapshotPayload): { nics: number; macs: string[] } {
  const saved = (s.machine as { virtio?: { name?: string; state?: { device?: { mac?: unknown } } }[] }).virtio ?? [];
  const nets = saved.filter((v) => v.name?.startsWith('virtio-net'));
  const macs = nets.map((v) => {
    const m = v.state?.device?.mac;
    return Array.isArray(m) && m.length === 6 && m.every((b) => Number.isInteger(b) && b >= 0 && b < 256)
      ? m.map((b: number) => b.toString(16).padStart(2, '0')).join(':')
      : '';
  });
  return { nics: nets.length, macs };
}
