// tsvisor's side of the live-migration benchmark: two daemons with their own
// state directories on loopback, a VM moved from one to the other with
// `tsvisor migrate`, and the figures tsvisor reports for it.

import { spawn, spawnSync } from 'node:child_process';
import { track } from './proc.js';
import { join } from 'node:path';
import { TSVISOR_BIN } from './guest-build.js';
import type { GuestSpec, MigrationCase, MigrationFigures } from './qemu-migrate.js';
import { api, DaemonConsole, makeImages, startBenchDaemon, stopBenchDaemon, type BenchDaemon } from './daemon-pair.js';

const VM = 'mig';

/** True when this build has `tsvisor migrate`. */
export function hasMigrate(): boolean {
  const r = spawnSync(process.execPath, [TSVISOR_BIN, 'migrate', '--help'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Moves VM from `src` to `dst` with `tsvisor migrate` (as a user would), then
 * reads the exact figures from the source's migration status (the CLI rounds them).
 */
async function migrate(src: BenchDaemon, dst: BenchDaemon, downtimeMs: number, timeoutMs: number): Promise<Omit<MigrationFigures, 'verified'>> {
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = track(spawn(process.execPath, [
      TSVISOR_BIN, 'migrate', VM, '--to', dst.url, '--token-file', dst.tokenFile, '--socket', src.socket,
      '--downtime-limit', String(downtimeMs), '--timeout', String(Math.ceil(timeoutMs / 1000)),
    ], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
  if (r.code !== 0) throw new Error(`tsvisor migrate failed: ${(r.err || r.out).trim().split('\n').pop()}`);
  const st = await api(src, 'GET', `/v1/vms/${VM}/migrate`);
  if (st.status !== 200) throw new Error(`migration status: HTTP ${st.status} ${JSON.stringify(st.json)}`);
  const p = st.json as { phase: string; round: number; bytesSent: number; throttlePercent: number; totalMs?: number; downtimeMs?: number; steps?: Record<string, number> };
  if (p.phase !== 'completed') throw new Error(`migration status says ${p.phase}`);
  return { totalMs: p.totalMs ?? NaN, downtimeMs: p.downtimeMs ?? NaN, bytes: p.bytesSent, rounds: p.round + 1, throttlePct: p.throttlePercent, steps: p.steps };
}

export async function tsvisorLiveMigration(
  g: GuestSpec, c: MigrationCase, work: string, opts: { downtimeMs: number; timeoutMs: number; say: (s: string) => void },
): Promise<MigrationFigures> {
  if (!hasMigrate()) throw new Error('this build has no tsvisor migrate');
  const dir = join(work, `tsvisor-${c.name}`);
  const images = join(dir, 'images');
  makeImages(images, g.kernel, g.initrd);
  const daemons: BenchDaemon[] = [];
  const consoles: DaemonConsole[] = [];
  try {
    const src = await startBenchDaemon(dir, 'src', images, opts.timeoutMs);
    daemons.push(src);
    const dst = await startBenchDaemon(dir, 'dst', images, opts.timeoutMs);
    daemons.push(dst);
    const made = await api(src, 'POST', '/v1/vms', { name: VM, memory: g.memMiB, kernel: 'vmlinux', initrd: 'initrd', append: g.append });
    if (made.status !== 201 && made.status !== 200) throw new Error(`create: HTTP ${made.status} ${JSON.stringify(made.json)}`);
    const started = await api(src, 'POST', `/v1/vms/${VM}/start`);
    if (started.status >= 300) throw new Error(`start: HTTP ${started.status} ${JSON.stringify(started.json)}`);
    // The daemon replays recent output to a new console client, so nothing of the boot is missed.
    const srcCon = await DaemonConsole.open(src, VM);
    consoles.push(srcCon);
    await srcCon.waitFor(/tsvisor guest ready[\s\S]*# (\x1b\[6n)?$/, opts.timeoutMs, 'waiting for the shell prompt');
    let lastPass = 0;
    if (c.workload) {
      srcCon.type(c.workload);
      for (let i = 0; i < 2; i++) lastPass = Number((await srcCon.waitFor(/DIRTY (\d+) [0-9a-f]{16}\n/, opts.timeoutMs, 'waiting for the workload'))[1]);
    }
    opts.say(`tsvisor ${c.name}: migrating to ${dst.url}`);
    const figures = await migrate(src, dst, opts.downtimeMs, opts.timeoutMs);
    const dstCon = await DaemonConsole.open(dst, VM);
    consoles.push(dstCon);
    if (c.workload) {
      for (;;) {
        const pass = Number((await dstCon.waitFor(/DIRTY (\d+) [0-9a-f]{16}\n/, opts.timeoutMs, 'waiting for the workload on the destination'))[1]);
        if (pass > lastPass) break;
      }
    } else {
      dstCon.type('echo A$((40+2))B');
      await dstCon.waitFor(/A42B/, opts.timeoutMs, 'waiting for the console to answer on the destination');
    }
    return { ...figures, verified: true };
  } finally {
    for (const con of consoles) con.close();
    for (const d of daemons.reverse()) await stopBenchDaemon(d);
  }
}
