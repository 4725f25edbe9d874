// Restores and clones inside one `tsvisor serve`: a guest booted by the daemon
// and snapshotted idle at its prompt (PUT /v1/vms/NAME/snapshot), then VMs
// defined from that snapshot started one at a time (POST /v1/vms/NAME/start,
// timed to the console's answer; the daemon's log line says where the restore
// spent its time), then N clones at once (POST /v1/snapshots/SNAP/clones) and
// the daemon process's memory before and after them.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { api, DaemonConsole, makeImages, startBenchDaemon, stopBenchDaemon, type BenchDaemon } from './daemon-pair.js';
import { pssKiB, type GuestSpec } from './qemu-migrate.js';
import { writtenGuestKiB } from './tsvisor-snapshot.js';

const ASK = 'echo R$((1+1))R';
const ANSWER = /R2R/;

export interface DaemonRestore {
  /** POST start to the console's answer, as a client sees it. */
  startToAnswerMs: number;
  /** Where that went, from the POST: its answer, the console open, the guest echoing the question (its tty at work). */
  postMs: number;
  consoleOpenMs: number;
  echoMs: number;
  /** Guest instructions from the snapshot to the answer, the worker's busy (running) time, and the share run by translated code. */
  instructions: number;
  busyMs: number;
  translatedShare: number;
  /** The daemon's "restored in ..." log line for it. */
  report: string;
}

export interface DaemonCloneFigures {
  count: number;
  daemonPssBeforeKiB: number;
  daemonPssAfterKiB: number;
  /** (after - before) / count. */
  perCloneKiB: number;
  /** Guest pages the clones wrote (private copies of the snapshot's memory file), per clone. */
  writtenPerCloneKiB: number;
}

async function ok(d: BenchDaemon, method: string, path: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await api(d, method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Type the question now and every 500 ms until the console answers. */
async function answered(con: DaemonConsole, timeoutMs: number): Promise<void> {
  con.type(ASK);
  const t = setInterval(() => con.type(ASK), 500);
  try {
    await con.waitFor(ANSWER, timeoutMs, 'waiting for the console to answer');
  } finally {
    clearInterval(t);
  }
}

/** The daemon's log line about `vm`'s restore, once it is there. */
async function restoreReport(d: BenchDaemon, vm: string, timeoutMs: number): Promise<string> {
  const re = new RegExp(`${vm}: (restored in [^\\n]*)`);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(d.stderr());
    if (m) return m[1]!;
    if (Date.now() > end) return '(no report)';
    await delay(50);
  }
}

export async function daemonRestoresAndClones(
  g: GuestSpec, work: string, opts: { restores: number; clones: number; settleMs: number; timeoutMs: number; say: (s: string) => void },
): Promise<{ restores: DaemonRestore[]; clones: DaemonCloneFigures | null }> {
  const dir = join(work, 'daemon-restore');
  const images = join(dir, 'images');
  makeImages(images, g.kernel, g.initrd);
  // Room for the clones: the budget counts each clone's whole RAM, the host only what they touch.
  const d = await startBenchDaemon(dir, 'host', images, opts.timeoutMs, `${(opts.clones + 2) * g.memMiB}M`);
  try {
    opts.say('tsvisor daemon: boot and snapshot');
    await ok(d, 'POST', '/v1/vms', { name: 'orig', memory: g.memMiB, kernel: 'vmlinux', initrd: 'initrd', append: g.append });
    await ok(d, 'POST', '/v1/vms/orig/start');
    const con = await DaemonConsole.open(d, 'orig');
    await con.waitFor(/tsvisor guest ready[\s\S]*# /, opts.timeoutMs, 'waiting for the shell prompt');
    await answered(con, opts.timeoutMs);
    await delay(opts.settleMs);
    const snapped = await ok(d, 'PUT', '/v1/vms/orig/snapshot', { dir: 'base' });
    const snapInstret = Number(snapped.instret ?? NaN);
    con.close();
    await ok(d, 'POST', '/v1/vms/orig/kill');

    const restores: DaemonRestore[] = [];
    for (let i = 1; i <= opts.restores; i++) {
      opts.say(`tsvisor daemon: restore ${i}/${opts.restores}`);
      const name = `r${i}`;
      await ok(d, 'POST', '/v1/vms', { name, memory: g.memMiB, kernel: 'vmlinux', initrd: 'initrd', snapshot: 'base' });
      // Let the warm worker (refilled a moment after each take) be ready, as on a daemon between requests.
      await delay(opts.settleMs);
      const t0 = performance.now();
      await ok(d, 'POST', `/v1/vms/${name}/start`);
      const postMs = performance.now() - t0;
      const c = await DaemonConsole.open(d, name);
      const consoleOpenMs = performance.now() - t0;
      const echo = c.mark(/R\$\(\(1\+1\)\)R/);
      await answered(c, opts.timeoutMs);
      const startToAnswerMs = performance.now() - t0;
      const echoMs = echo.at === null ? NaN : echo.at - t0;
      const st = await ok(d, 'GET', `/v1/vms/${name}/stats`);
      c.close();
      restores.push({
        startToAnswerMs, postMs, consoleOpenMs, echoMs,
        instructions: Number(st.instructions) - snapInstret, busyMs: Number(st.busyUs) / 1000, translatedShare: Number(st.translatedShare),
        report: await restoreReport(d, name, 5000),
      });
      await ok(d, 'POST', `/v1/vms/${name}/kill`);
      await ok(d, 'DELETE', `/v1/vms/${name}`);
    }
    if (opts.clones === 0) return { restores, clones: null };

    opts.say(`tsvisor daemon: ${opts.clones} clones`);
    await delay(opts.settleMs);
    const pid = d.child.pid!;
    const before = pssKiB(pid);
    const made = await ok(d, 'POST', '/v1/snapshots/base/clones', { count: opts.clones, prefix: 'c' });
    const names: string[] = (made.vms ?? made.names ?? []).map((v: string | { name: string }) => (typeof v === 'string' ? v : v.name));
    const all = names.length ? names : Array.from({ length: opts.clones }, (_, i) => `c-${i + 1}`);
    const consoles = await Promise.all(all.map((n) => DaemonConsole.open(d, n)));
    try {
      await Promise.all(consoles.map((c) => answered(c, opts.timeoutMs)));
      await delay(opts.settleMs);
      const after = pssKiB(pid);
      return {
        restores,
        clones: {
          count: all.length, daemonPssBeforeKiB: before, daemonPssAfterKiB: after,
          perCloneKiB: (after - before) / all.length, writtenPerCloneKiB: writtenGuestKiB(pid) / all.length,
        },
      };
    } finally {
      for (const c of consoles) c.close();
    }
  } finally {
    await stopBenchDaemon(d);
  }
}
