// Clones of a snapshot, end to end with the default guest (real kernel, real busybox).
// A deterministic VM with a raw disk is snapshotted at instruction N; the same
// console script then runs in four restored VMs (separate `tsvisor run` processes):
// two plain restores and two `--clone`s. Plain restores of a deterministic VM are
// identical, so they print the same /dev/urandom bytes: that shows the comparison
// can fail. The clones get new VM generation IDs, the guest reseeds its RNG, and
// they print bytes that differ from each other and from the plain ones. The clones
// also write their disk, which must land in their overlays: the snapshot's disk
// stays all zeros.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createNicHosts } from '../src/net/create-backend.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootDefaultGuest, ChildConsole } from './lib/vm-console.js';
import type { SnapshotResult } from '../src/vm/protocol.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TIMEOUT_MS = 15 * 60 * 1000;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-clone-e2e-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Run `tsvisor` to its exit; resolves with the status and both outputs. */
function runCli(args: string[], what: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('latin1')));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('latin1')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${what}\n${out.slice(-2000)}\n${err}`));
    }, TIMEOUT_MS);
    timer.unref();
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, out, err });
    });
  });
}

test('clones of one snapshot reseed the guest RNG and write only their own disk overlays', { timeout: budget(3 * TIMEOUT_MS) }, async () => {
  const img = join(dir, 'data.img');
  writeFileSync(img, '');
  truncateSync(img, 8 * 1024 * 1024);
  const a = await bootDefaultGuest({ deterministic: true, disks: [{ path: img, format: 'raw' }] });
  assert.match(await a.run('ls /sys/bus/platform/drivers/vmgenid/'), /102000\.vmgenid/, 'the guest kernel bound its vmgenid driver to the device');
  // Paused while the snapshot is scheduled: on a loaded host the guest could otherwise pass N first.
  a.vm.pause();
  const n = Number(a.vm.live().instret) + 20_000_000; // pause() takes effect a slice later
  const snapDir = join(dir, 'snap');
  const snapped = new Promise<SnapshotResult>((resolve) => a.vm.once('snapshot', resolve));
  await a.vm.command({ type: 'scheduleSnapshot', dir: snapDir, instret: n });
  a.vm.resume();
  const snap = await Promise.race([snapped, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timed out: the snapshot')), TIMEOUT_MS).unref())]);
  assert.equal(snap.instret, n);
  await a.vm.stop();

  // Markers are made by the shell, so the echoed command line never matches them.
  const show = 'echo R$((1+1))N $(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n")';
  const plainScript = join(dir, 'plain.json');
  writeFileSync(plainScript, JSON.stringify([{ instret: n + 50_000, data: `${show}; poweroff\n` }]));
  const script = join(dir, 'clone.json');
  writeFileSync(script, JSON.stringify([{ instret: n + 50_000, data: `${show}; dd if=/dev/urandom of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; poweroff\n` }]));
  const bytesOf = (r: { code: number | null; out: string; err: string }, who: string): string => {
    assert.equal(r.code, 0, `${who}: ${r.err}\n${r.out.slice(-2000)}`);
    const m = /R2N ([0-9a-f]{32})/.exec(r.out);
    assert.ok(m, `${who} printed its random bytes\n${r.out.slice(-2000)}`);
    return m[1]!;
  };

  // Plain restores use the snapshot's disk itself (locked): one after the other.
  const p1 = bytesOf(await runCli(['run', '--restore', snapDir, '--input-script', plainScript], 'plain restore 1'), 'plain restore 1');
  const p2 = bytesOf(await runCli(['run', '--restore', snapDir, '--input-script', plainScript], 'plain restore 2'), 'plain restore 2');
  assert.equal(p1, p2, 'plain restores of a deterministic snapshot print the same bytes (the baseline)');
  const c1dir = join(dir, 'c1');
  const c2dir = join(dir, 'c2');
  const clones = await Promise.all([c1dir, c2dir].map((d, i) => runCli(['run', '--restore', snapDir, '--input-script', script, '--clone', '--clone-dir', d], `clone ${i + 1}`)));
  const [r1, r2] = clones.map((r, i) => bytesOf(r, `clone ${i + 1}`));
  assert.notEqual(r1, r2, 'two clones of one snapshot print different /dev/urandom bytes');
  assert.ok(r1 !== p1 && r2 !== p1, 'a clone prints other bytes than a plain restore');
  for (const d of [c1dir, c2dir]) assert.ok(existsSync(join(d, 'disk0.qcow2')), `an overlay in ${d}`);
  assert.ok(readFileSync(img).every((b) => b === 0), "the clones' writes did not reach the snapshot's disk");
});

test("a clone's NIC blips: the guest counts a carrier down and up, and keeps its MAC", { timeout: budget(TIMEOUT_MS) }, async () => {
  const name = 'blip';
  const a = await bootDefaultGuest({ name, nicSpecs: ['user'] }, { nics: await createNicHosts([{ mode: 'user', params: [] }], name) });
  const readNet = async (run: (cmd: string) => Promise<string>) => {
    const out = await run('echo C$((0))C $(cat /sys/class/net/eth0/carrier_changes) $(cat /sys/class/net/eth0/address)');
    const m = /C0C (\d+) ([0-9a-f:]{17})/.exec(out);
    assert.ok(m, `eth0's carrier count and address\n${out}`);
    return { changes: Number(m[1]), mac: m[2]! };
  };
  const before = await readNet((c) => a.run(c));
  a.vm.pause();
  const snapDir = join(dir, 'net-snap');
  await a.vm.snapshot(snapDir);
  await a.vm.stop();

  const child = spawn(process.execPath, [CLI, 'run', '--restore', snapDir, '--clone', '--clone-dir', join(dir, 'net-clone')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.stdin!.on('error', () => {});
  const con = new ChildConsole(child);
  try {
    await con.waitFor(/restored in/, 120_000);
    let now = await readNet((c) => con.run(c, 120_000));
    for (let k = 0; k < 60 && now.changes < before.changes + 2; k++) now = await readNet((c) => con.run(c, 120_000));
    assert.equal(now.changes, before.changes + 2, 'one carrier loss and one carrier gain since the snapshot');
    assert.equal(now.mac, before.mac);
    con.type('poweroff -f');
    assert.equal(await Promise.race([con.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timed out: poweroff')), 120_000).unref())]), 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
