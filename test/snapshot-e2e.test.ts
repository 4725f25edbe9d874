// Snapshots end to end with the default guest (real kernel, real busybox):
//
// 1. Determinism as the test of completeness: a deterministic VM (translator on)
//    is snapshotted at a fixed instruction count N and goes on with a scripted
//    console session (input keyed to instruction counts); a new `tsvisor run
//    --restore` process gets the same script. Whatever the restored VM prints
//    must be exactly the tail of what the original printed: any state the
//    snapshot missed would show as a difference.
// 2. A workload across a restore: a shell loop keeps a counter and a running
//    checksum in a file on an ext4 disk (written, renamed, synced). The VM is
//    paused, snapshotted and stopped; the restored VM (another process) goes on
//    counting from where it was, its checksum still agrees with the counter, and
//    the file system is clean afterwards (e2fsck).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootDefaultGuest, ChildConsole } from './lib/vm-console.js';
import { RUN_STATE_PAUSED, type SnapshotResult } from '../src/vm/protocol.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TIMEOUT_MS = 10 * 60 * 1000;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-snap-e2e-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function startCli(args: string[]): { child: ChildProcess; con: ChildConsole; stdout: () => string; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.stdin!.on('error', () => {});
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('latin1')));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('latin1')));
  return { child, con: new ChildConsole(child), stdout: () => out, stderr: () => err };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`timed out: ${what}`)), ms).unref())]);
}

/** The guest's running checksum, computed the same way on the host. */
function checksum(n: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s = (s * 31 + i) % 1000003;
  return s;
}

test('deterministic: a VM restored at instruction N prints exactly what the original printed after N (translator on)', { timeout: budget(TIMEOUT_MS) }, async () => {
  const a = await bootDefaultGuest({ deterministic: true });
  const snapDir = join(dir, 'det');
  // Just after the prompt. The guest idles in its shell there, and an idle guest retires
  // few instructions per host second (guest time jumps to its next timer), so the
  // scripted input follows closely; the shell reads it in turn from its terminal.
  // Paused while N is chosen and the hooks are set: on a loaded host the live counter
  // could otherwise be read long before the commands arrive, past N.
  a.vm.pause();
  for (let k = 0; a.vm.live().state !== RUN_STATE_PAUSED; k++) {
    assert.ok(k < 6000, 'the VM pauses');
    await new Promise((r) => setTimeout(r, 10));
  }
  // A wide margin: the published count may trail the core by a slice.
  const n = Number(a.vm.live().instret) + 20_000_000;
  // Markers are computed by the shell, so the echoed command lines never match them.
  const events = [
    { instret: n + 50_000, data: 'echo snap-$((6*7)); i=0; s=0; while [ $i -lt 300 ]; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); done; echo loop-$i-$s; cat /proc/uptime\n' },
    { instret: n + 100_000, data: 'echo second-$((2+3)); head -2 /proc/interrupts\n' },
    { instret: n + 150_000, data: 'poweroff\n' },
  ];
  const snapped = new Promise<SnapshotResult>((resolve) => a.vm.once('snapshot', resolve));
  await a.vm.command({ type: 'scheduleSnapshot', dir: snapDir, instret: n });
  await a.vm.command({ type: 'scheduleInput', events });
  a.vm.resume();
  const snap = await withTimeout(snapped, TIMEOUT_MS, 'the snapshot at instruction N');
  assert.equal(snap.instret, n, 'the snapshot was taken at exactly N');
  const exitA = await withTimeout(a.vm.exited, TIMEOUT_MS, 'the original to power off');
  assert.equal(exitA.code, 0, exitA.reason);

  const script = join(dir, 'script.json');
  writeFileSync(script, JSON.stringify(events));
  const b = startCli(['run', '--restore', snapDir, '--input-script', script]);
  const codeB = await withTimeout(b.con.exited, TIMEOUT_MS, `the restored VM to power off\n${b.stdout().slice(-2000)}\n${b.stderr()}`);
  assert.equal(codeB, 0, b.stderr());
  assert.match(b.stderr(), /restored in [\d.]+ ms/);
  const outB = b.stdout();
  assert.match(outB, /snap-42/);
  assert.match(outB, new RegExp(`loop-300-${checksum(300)}`));
  assert.match(outB, /second-5/);
  assert.ok(a.out.endsWith(outB), `the restored VM's output is not the tail of the original's\n--- restored ---\n${outB.slice(0, 3000)}\n--- original tail ---\n${a.out.slice(-outB.length - 200).slice(0, 3000)}`);
});

const have = (t: string) => spawnSync('sh', ['-c', `command -v ${t} || test -x /usr/sbin/${t} || test -x /sbin/${t}`]).status === 0;
const sbin = (t: string) => (spawnSync('sh', ['-c', `command -v ${t}`]).status === 0 ? t : spawnSync('test', ['-x', `/usr/sbin/${t}`]).status === 0 ? `/usr/sbin/${t}` : `/sbin/${t}`);
const missing = ['mkfs.ext4', 'e2fsck'].filter((t) => !have(t));

test('a guest workload (counter and checksum in a file on disk) goes on correctly in the restored VM', { timeout: budget(TIMEOUT_MS), skip: missing.length ? `missing ${missing.join(', ')} (e2fsprogs)` : false }, async () => {
  const img = join(dir, 'data.img');
  writeFileSync(img, '');
  truncateSync(img, 32 * 1024 * 1024);
  const mk = spawnSync(sbin('mkfs.ext4'), ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img], { encoding: 'utf8' });
  assert.equal(mk.status, 0, `mkfs.ext4: ${mk.stderr}`);

  const a = await bootDefaultGuest({ disks: [{ path: img }] });
  assert.match(await a.run('mkdir -p /mnt && mount /dev/vda /mnt'), /status 0/);
  a.type('(i=0; s=0; while true; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); echo "$i $s" > /mnt/state.tmp && mv /mnt/state.tmp /mnt/state && sync; done) &');
  // Let it count a while.
  let before = 0;
  for (let k = 0; k < 120 && before < 20; k++) {
    const m = (await a.run('cat /mnt/state')).match(/^(\d+) (\d+)\r?$/m);
    before = m ? Number(m[1]) : 0;
  }
  assert.ok(before >= 20, 'the loop counts');
  a.vm.pause();
  const snapDir = join(dir, 'work');
  const snap = await a.vm.snapshot(snapDir);
  assert.ok(snap.dataPages > 0);
  await a.vm.stop();

  const b = startCli(['run', '--restore', snapDir]);
  try {
    await b.con.waitFor(/restored in/, 120_000);
    const read = async () => {
      const m = (await b.con.run('read i s < /mnt/state; echo "NOW $i $s"', 120_000)).match(/NOW (\d+) (\d+)/);
      assert.ok(m, 'the state file is readable');
      return { i: Number(m[1]), s: Number(m[2]) };
    };
    const first = await read();
    assert.ok(first.i >= before, `the counter went on from ${before} (now ${first.i})`);
    let later = first;
    for (let k = 0; k < 120 && later.i <= first.i; k++) later = await read();
    assert.ok(later.i > first.i, 'the restored loop keeps counting');
    assert.equal(later.s, checksum(later.i), 'the running checksum still agrees with the counter');
    assert.match(await b.con.run('kill %1; wait; sync; umount /mnt', 120_000), /status 0/);
    b.con.type('poweroff -f');
    assert.equal(await withTimeout(b.con.exited, 120_000, 'poweroff'), 0, b.stderr());
  } finally {
    if (b.child.exitCode === null) b.child.kill('SIGKILL');
  }
  const fsck = spawnSync(sbin('e2fsck'), ['-fn', img], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, `e2fsck: ${fsck.stdout}${fsck.stderr}`);
});
