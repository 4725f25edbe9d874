// VM definitions on disk: one JSON file per VM in <state>/vms, written to a
// temporary file and renamed into place, so a crash leaves either the old or
// the new definition, never half of one.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { VmDefinition } from './types.js';

export class DefinitionStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'vms');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  save(name: string, def: VmDefinition): void {
    const tmp = join(this.dir, `.${name}.json.${process.pid}.tmp`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(def, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file(name));
  }

  remove(name: string): void {
    rmSync(this.file(name), { force: true });
  }

  /** Every stored definition; unreadable files are reported through `warn` and skipped. */
  loadAll(warn: (msg: string) => void): VmDefinition[] {
    const out: VmDefinition[] = [];
    for (const f of readdirSync(this.dir).sort()) {
      if (f.startsWith('.')) {
        // A temporary file left by a crash between write and rename.
        rmSync(join(this.dir, f), { force: true });
        continue;
      }
      if (!f.endsWith('.json')) continue;
      try {
        const def = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as VmDefinition;
        if (def.version !== 1 || typeof def.config?.name !== 'string' || `${def.config.name}.json` !== f) {
          throw new Error('not a tsvisor VM definition');
        }
        out.push(def);
      } catch (e) {
        warn(`skipping ${f}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return out;
  }
}
