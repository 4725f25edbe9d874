// tsvisor's side of the live-migration benchmark: two daemons with their own
// state directories on loopback, a VM moved from one to the other with
// `tsvisor migrate`, and the figures tsvisor reports for it.

import { spawnSync } from 'node:child_process';
import { TSVISOR_BIN } from './guest-build.js';
import type { GuestSpec, MigrationCase, MigrationFigures } from './qemu-migrate.js';

/** True when this build has `tsvisor migrate`. */
export function hasMigrate(): boolean {
  const r = spawnSync(process.execPath, [TSVISOR_BIN, 'migrate', '--help'], { encoding: 'utf8' });
  return r.status === 0;
}

export async function tsvisorLiveMigration(
  _g: GuestSpec, _c: MigrationCase, _work: string, _opts: { downtimeMs: number; timeoutMs: number; say: (s: string) => void },
): Promise<MigrationFigures> {
  if (!hasMigrate()) throw new Error('this build has no tsvisor migrate');
  throw new Error('not wired yet');
}
