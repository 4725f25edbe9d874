// `tsvisor clone SNAPSHOT --count N`: N detached clone processes from one
// snapshot of the default guest, each restored with its own directory, pid
// file and console log; they run until killed. Reports each clone's host
// memory (PSS, from /proc/PID/smaps_rollup) as a diagnostic.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootDefaultGuest } from './lib/vm-console.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-clone-cli-'));
const pids: number[] = [];
/** Running (a zombie left unreaped by whoever adopted it counts as gone). */
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};
after(() => {
  for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('tsvisor clone refuses bad arguments and a missing snapshot with one line', () => {
  for (const [args, re] of [
    [['clone'], /needs one snapshot directory/],
    [['clone', dir, '--count', '0'], /invalid --count/],
    [['clone', dir, '--prefix', '../x'], /invalid --prefix/],
    [['clone', join(dir, 'nothing')], /not a snapshot/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('tsvisor clone --count 3 starts three detached clones of one snapshot', { timeout: budget(15 * 60 * 1000) }, async (t) => {
  const a = await bootDefaultGuest({ memMiB: 128 });
  a.vm.pause();
  const snap = join(dir, 'snap');
  await a.vm.snapshot(snap);
  await a.vm.stop();

  const r = spawnSync(process.execPath, [CLI, 'clone', snap, '--count', '3', '--prefix', 'c', '--dir', join(dir, 'clones')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => l.split(' '));
  assert.deepEqual(lines.map((l) => l[0]), ['c-1', 'c-2', 'c-3']);
  for (const [name, pidText, d] of lines) {
    const pid = Number(pidText);
    pids.push(pid);
    assert.equal(readFileSync(join(d!, 'pid'), 'utf8').trim(), pidText, `${name}: pid file`);
  }
  for (const [name, pidText, d] of lines) {
    const log = join(d!, 'console.log');
    await until(`${name} to restore (${log})`, () => existsSync(log) && /restored in [\d.]+ ms/.test(readFileSync(log, 'utf8')), 300_000);
    assert.ok(alive(Number(pidText)), `${name} keeps running\n${readFileSync(log, 'utf8').slice(-1000)}`);
  }
  // Let the clones settle idle, then report their host memory.
  await new Promise((res) => setTimeout(res, 5000));
  for (const [name, pidText] of lines) {
    const rollup = readFileSync(`/proc/${pidText}/smaps_rollup`, 'utf8');
    const pss = /^Pss:\s+(\d+) kB/m.exec(rollup)?.[1];
    const rss = /^Rss:\s+(\d+) kB/m.exec(rollup)?.[1];
    t.diagnostic(`${name}: PSS ${Math.round(Number(pss) / 1024)} MiB, RSS ${Math.round(Number(rss) / 1024)} MiB`);
  }
  // A clone stops on SIGTERM like on Ctrl-C.
  for (const [, pidText] of lines) process.kill(Number(pidText), 'SIGTERM');
  for (const [name, pidText] of lines) await until(`${name} to exit after SIGTERM`, () => !alive(Number(pidText)), 60_000);
});
