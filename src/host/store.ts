// VM definitions on disk: one JSON file per VM in <state>/vms, written to a
// temporary file and renamed into place, so a crash leaves either the old or
// the new definition, never half of one. Nothing read back is trusted: the
// registry validates each definition like API input, and a file that fails
// is moved aside (never deleted) with its reason next to it.

import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from './validate.js';

/** Larger files are not definitions (a real one is a few KiB). */
const MAX_DEFINITION_BYTES = 256 * 1024;
const MAX_REASON_BYTES = 4096;
const TEMP_FILE = /^\..+\.json\.\d+(-\d+)?\.tmp$/;
const KEPT_FILE = /^(.+)\.json\.broken-(\d+)$/;

/** A stored file as read back: its VM name (from the file name) and the parsed JSON, or why it could not be read. */
export type StoredFile = { name: string; file: string; json: unknown } | { name: string; file: string; error: string };

/** A definition kept aside: the VM's name stays taken until it is deleted. */
export interface KeptFile {
  name: string;
  /** The kept file and its reason file, both removed by DELETE. */
  files: string[];
  reason: string;
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** Read at most `max` bytes; longer files are refused rather than read whole. */
function readBounded(path: string, max: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > max) throw new Error(`larger than ${max} bytes`);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

export class DefinitionStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'vms');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /**
   * Write a definition atomically. A full disk (or quota) is a 507 for the
   * client, and the temporary file is removed whatever went wrong.
   */
  save(name: string, def: unknown): void {
    this.commitStaged(name, this.stage(name, def));
  }

  /** Staged definitions so far (their temporary names must differ from each other and from save()'s). */
  private staged = 0;

  /**
   * Write a definition durably under a temporary name (fsynced; removed at the
   * next start if never put in place), for commitStaged() to put in place with
   * a rename alone: a migration's destination stages before COMMIT, so its
   * guest's downtime holds no fsync. Errors as for save().
   */
  stage(name: string, def: unknown): string {
    const tmp = join(this.dir, `.${name}.json.${process.pid}-${++this.staged}.tmp`);
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeFileSync(fd, `${JSON.stringify(def, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      rmSync(tmp, { force: true });
      const code = errnoOf(e);
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new ApiError(507, `state: no space left to store the definition of '${name}' in ${this.dir}`);
      }
      throw e;
    }
    return tmp;
  }

  /** Put a staged definition in place (atomic rename). */
  commitStaged(name: string, tmp: string): void {
    try {
      renameSync(tmp, this.file(name));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Forget a staged definition that will not be put in place. */
  dropStaged(tmp: string): void {
    rmSync(tmp, { force: true });
  }

  remove(name: string): void {
    rmSync(this.file(name), { force: true });
  }

  /** Names of the definition files now on disk (what the API must list). */
  names(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -'.json'.length));
  }

  /** Every definition file, parsed but not validated, and the files kept aside earlier. */
  readAll(): { stored: StoredFile[]; kept: KeptFile[] } {
    const stored: StoredFile[] = [];
    const kept = new Map<string, KeptFile>();
    for (const f of readdirSync(this.dir).sort()) {
      const path = join(this.dir, f);
      if (TEMP_FILE.test(f)) {
        rmSync(path, { force: true }); // our own temporary file, left by a crash between write and rename
        continue;
      }
      const k = KEPT_FILE.exec(f);
      if (k) {
        const reasonFile = `${path}.reason`;
        let reason = 'kept aside at an earlier start';
        try {
          if (existsSync(reasonFile)) reason = readBounded(reasonFile, MAX_REASON_BYTES).toString('utf8').trim() || reason;
        } catch {
          // the reason is a courtesy; the kept file is what matters
        }
        const entry = kept.get(k[1]) ?? { name: k[1], files: [], reason };
        entry.files.push(path, reasonFile);
        kept.set(k[1], entry);
        continue;
      }
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      const name = f.slice(0, -'.json'.length);
      try {
        const text = readBounded(path, MAX_DEFINITION_BYTES).toString('utf8');
        stored.push({ name, file: path, json: JSON.parse(text) as unknown });
      } catch (e) {
        stored.push({ name, file: path, error: e instanceof SyntaxError ? `invalid JSON (${e.message})` : e instanceof Error ? e.message : String(e) });
      }
    }
    return { stored, kept: [...kept.values()] };
  }

  /** Move a definition that failed its checks aside, with the reason next to it. */
  keepAside(name: string, reason: string): KeptFile {
    const kept = `${this.file(name)}.broken-${Date.now()}`;
    renameSync(this.file(name), kept);
    const reasonFile = `${kept}.reason`;
    try {
      writeFileSync(reasonFile, `${reason}\n`, { mode: 0o600 });
    } catch {
      // a full disk must not stop the daemon from starting; the daemon log has the reason
    }
    return { name, files: [kept, reasonFile], reason };
  }
}
