// Disk security rules without booting a guest (tiny wfi kernels): formats are
// fixed when a VM is defined, qcow2 backing files stay inside the images
// directory and need a stated format, backing chains are at most 16 deep, and
// image locks keep two VMs (of the daemon, in a process of their own, or of
// `tsvisor run`) from sharing a writable disk or writing another VM's kernel.
// Images are made by qemu-img; locks are observed in /proc/locks.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { startDaemon } from '../src/host/server.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const needs = { timeout: budget(180_000), skip: haveQemuImg ? false : 'qemu-img is not installed (qemu-utils)' } as const;
const haveAddon = (() => {
  try {
    return statSync(fileURLToPath(new URL('../../build/image-lock.node', import.meta.url))).isFile();
  } catch {
    return false;
  }
})();

let d: TestDaemon;
const logs: string[] = [];
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: 2048, cpus: 1, log: (m) => logs.push(m) });
  writeFileSync(join(d.dir, 'outside-secret'), 'host secret\n');
});
after(async () => {
  for (const c of live) c.kill('SIGKILL');
  await d?.cleanup();
});

function qemuImg(...args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stderr}`);
}

/** Remove the backing format from a qemu-img made overlay, as images from qemu-img before 6.1 (no -F) were. */
function dropBackingFormat(path: string): void {
  const img = readFileSync(path);
  const at = img.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
  assert.ok(at > 0, 'the overlay has a backing format extension');
  img.writeUInt32BE(0x7f000001, at); // an unknown extension, which readers skip
  writeFileSync(path, img);
  const info = spawnSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' });
  assert.equal(JSON.parse(info.stdout)['backing-filename-format'], undefined, 'qemu-img sees no backing format');
}

async function create(body: Record<string, unknown>): Promise<void> {
  const r = await api(d, 'POST', '/v1/vms', body);
  assert.equal(r.status, 201, r.text);
}

async function start(name: string): Promise<{ status: number; error: string }> {
  const r = await api(d, 'POST', `/v1/vms/${name}/start`);
  return { status: r.status, error: r.json?.error ?? r.text };
}

async function kill(name: string): Promise<void> {
  const r = await api(d, 'POST', `/v1/vms/${name}/kill`);
  assert.equal(r.status, 200, r.text);
  await until(`${name} ended`, () => d.host.vms.get(name)!.handle === null, 30_000);
}

/** The OFD locks on `path` listed in /proc/locks ("READ"/"WRITE" each). */
function ofdLocks(path: string): string[] {
  const ino = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => /\bOFDLCK\b/.test(l) && l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)))
    .map((l) => (/\bWRITE\b/.test(l) ? 'WRITE' : 'READ'));
}

/** `tsvisor run` with the wfi kernel; resolves with exit status and stderr once it ends. */
function cliRun(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; err: string }> } {
  const child = spawn(process.execPath, [CLI, 'run', '--kernel', join(d.images, 'idle'), '--mem', '16M', '--net', 'none', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<{ code: number | null; err: string }>((resolve) => child.on('close', (code) => {
    live.delete(child);
    resolve({ code, err });
  }));
  return { child, done };
}

/** `tsvisor run` that must refuse to start: its exit status and stderr (it is killed, and the test fails, if it runs on). */
async function cliRefused(args: string[]): Promise<{ code: number | null; err: string }> {
  const { child, done } = cliRun(args);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const r = await done;
  clearTimeout(timer);
  assert.notEqual(r.code, null, `tsvisor run ${args.join(' ')} did not refuse to start within 60 s`);
  return r;
}

test('a disk created without a format has it fixed in the definition; a raw disk stays raw after it gains a qcow2 header', needs, async () => {
  const raw = join(d.images, 'fmt.raw');
  qemuImg('create', '-q', '-f', 'raw', raw, '1M');
  const q = join(d.images, 'fmt.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', q, '1M');
  await create({ name: 'fmt', memory: 16, kernel: 'idle', disks: [{ path: 'fmt.raw' }, { path: 'fmt.qcow2', readonly: true }] });
  const def = JSON.parse(readFileSync(join(d.dir, 'state', 'vms', 'fmt.json'), 'utf8'));
  assert.deepEqual(def.config.disks.map((x: { format: string }) => x.format), ['raw', 'qcow2']);
  // The raw file now looks like a qcow2 image whose backing file is outside the images
  // directory (as a guest could make it): the VM still starts, the disk taken as raw.
  qemuImg('create', '-q', '-f', 'qcow2', '-b', join(d.dir, 'outside-secret'), '-F', 'raw', raw, '1M');
  const s = await start('fmt');
  assert.equal(s.status, 200, s.error);
  assert.deepEqual(ofdLocks(raw), haveAddon ? ['WRITE'] : []);
  await kill('fmt');
  assert.deepEqual(ofdLocks(raw), [], 'the lock went with the VM');
  assert.equal((await api(d, 'DELETE', '/v1/vms/fmt')).status, 204);
});

test('a stored definition without a disk format gets one, once, when the daemon loads it', needs, async () => {
  const raw = join(d.images, 'old.raw');
  qemuImg('create', '-q', '-f', 'raw', raw, '1M');
  const q = join(d.images, 'old.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', q, '1M');
  const stateDir = join(d.dir, 'state2');
  const vmsDir = join(stateDir, 'vms');
  // A definition as daemons before this rule stored it: no formats.
  const first = await startDaemon({
    socketPath: join(d.dir, 'd2.sock'), stateDir, imagesDir: d.images, cpus: 1, memoryBudgetMiB: 256, wasmPath: defaultWasmPath(),
    debugFaults: false, hangTimeoutMs: 30_000, schedulerPeriodMs: 50, logMaxBytes: 1 << 20, workerMaxHeapMiB: 256, version: 'test', log: () => {},
  });
  await first.close();
  const old = {
    version: 1,
    createdAt: new Date().toISOString(),
    config: { name: 'old', memory: 16, kernel: join(d.images, 'idle'), disks: [{ path: raw }, { path: q, readonly: true }] },
  };
  writeFileSync(join(vmsDir, 'old.json'), JSON.stringify(old));
  const seen: string[] = [];
  const second = await startDaemon({
    socketPath: join(d.dir, 'd2.sock'), stateDir, imagesDir: d.images, cpus: 1, memoryBudgetMiB: 256, wasmPath: defaultWasmPath(),
    debugFaults: false, hangTimeoutMs: 30_000, schedulerPeriodMs: 50, logMaxBytes: 1 << 20, workerMaxHeapMiB: 256, version: 'test', log: (m) => seen.push(m),
  });
  try {
    const stored = JSON.parse(readFileSync(join(vmsDir, 'old.json'), 'utf8'));
    assert.deepEqual(stored.config.disks.map((x: { format: string }) => x.format), ['raw', 'qcow2']);
    assert.ok(seen.some((m) => /old: stored without a disk format: disks\[0\] .* is now fixed as raw/.test(m)), seen.join('\n'));
  } finally {
    await second.close();
  }
});

test('a qcow2 backing file outside the images directory is refused, also through a symlink', needs, async () => {
  const secret = join(d.dir, 'outside-secret');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', join(d.images, 'escape.qcow2'), '1M');
  const r = await api(d, 'POST', '/v1/vms', { name: 'esc', memory: 16, kernel: 'idle', disks: [{ path: 'escape.qcow2', format: 'qcow2' }] });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /^disks\[0\]\.path: qcow2: backing file '.*outside-secret' of .*escape\.qcow2 is outside the images directory$/);
  // A symlink inside the images directory that points out of it is no way around.
  symlinkSync(secret, join(d.images, 'secret-link'));
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'secret-link', '-F', 'raw', '-u', join(d.images, 'escape2.qcow2'), '1M');
  const r2 = await api(d, 'POST', '/v1/vms', { name: 'esc', memory: 16, kernel: 'idle', disks: [{ path: 'escape2.qcow2' }] });
  assert.equal(r2.status, 400, r2.text);
  assert.match(r2.json.error, /backing file 'secret-link' of .* is outside the images directory/);
  // Inside the directory, a chain is fine.
  qemuImg('create', '-q', '-f', 'raw', join(d.images, 'base.raw'), '1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', join(d.images, 'inside.qcow2'));
  await create({ name: 'inside', memory: 16, kernel: 'idle', disks: [{ path: 'inside.qcow2' }] });
  assert.equal((await start('inside')).status, 200);
  assert.deepEqual(ofdLocks(join(d.images, 'base.raw')), haveAddon ? ['READ'] : [], 'the backing file is locked shared');
  await kill('inside');
  assert.equal((await api(d, 'DELETE', '/v1/vms/inside')).status, 204);
});

test('a backing file without a stated format is refused by the daemon and by tsvisor run', needs, async () => {
  qemuImg('create', '-q', '-f', 'raw', join(d.images, 'nofmt-base.raw'), '1M');
  const overlay = join(d.images, 'nofmt.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'nofmt-base.raw', '-F', 'raw', overlay);
  dropBackingFormat(overlay);
  const r = await api(d, 'POST', '/v1/vms', { name: 'nofmt', memory: 16, kernel: 'idle', disks: [{ path: 'nofmt.qcow2' }] });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /^disks\[0\]\.path: qcow2: .*nofmt\.qcow2 names backing file 'nofmt-base\.raw' without its format, and tsvisor never guesses one/);
  const { code, err } = await cliRefused(['--disk', overlay]);
  assert.equal(code, 1, err);
  assert.match(err, /^tsvisor: qcow2: .*nofmt\.qcow2 names backing file 'nofmt-base\.raw' without its format/);
  assert.equal(err.trim().split('\n').length, 1, err);
});

test('backing chains deeper than 16 files are refused; 16 are fine', needs, async () => {
  qemuImg('create', '-q', '-f', 'raw', join(d.images, 'c0'), '1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'c0', '-F', 'raw', join(d.images, 'c1'));
  for (let i = 2; i <= 17; i++) qemuImg('create', '-q', '-f', 'qcow2', '-b', `c${i - 1}`, '-F', 'qcow2', join(d.images, `c${i}`));
  // c16 has 16 files below it, c17 has 17.
  await create({ name: 'deep16', memory: 16, kernel: 'idle', disks: [{ path: 'c16', readonly: true }] });
  const r = await api(d, 'POST', '/v1/vms', { name: 'deep17', memory: 16, kernel: 'idle', disks: [{ path: 'c17' }] });
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error, /^disks\[0\]\.path: qcow2: backing chain is longer than 16 files/);
  const { code, err } = await cliRefused(['--disk', `${join(d.images, 'c17')},readonly=on`]);
  assert.equal(code, 1, err);
  assert.match(err, /^tsvisor: cannot use disk .*c17: qcow2: backing chain is longer than 16 files/);
  assert.equal((await api(d, 'DELETE', '/v1/vms/deep16')).status, 204);
});

test('two VMs with the same writable disk: the second start is a 409; after the first stops it starts', needs, async () => {
  qemuImg('create', '-q', '-f', 'raw', join(d.images, 'shared.raw'), '1M');
  await create({ name: 'w1', memory: 16, kernel: 'idle', disks: [{ path: 'shared.raw' }] });
  await create({ name: 'w2', memory: 16, kernel: 'idle', disks: [{ path: 'shared.raw' }] });
  await create({ name: 'r3', memory: 16, kernel: 'idle', disks: [{ path: 'shared.raw', readonly: true }] });
  assert.equal((await start('w1')).status, 200);
  const s = await start('w2');
  assert.equal(s.status, 409, s.error);
  assert.match(s.error, /^disks\[0\]: .*shared\.raw is a read-write disk of VM 'w1' and cannot be attached read-write while that VM runs$/);
  const s3 = await start('r3');
  assert.equal(s3.status, 409, 'read-only use of a disk another VM writes is refused too');
  await kill('w1');
  assert.equal((await start('w2')).status, 200, 'the lock went with w1');
  await kill('w2');
  for (const n of ['w1', 'w2', 'r3']) assert.equal((await api(d, 'DELETE', `/v1/vms/${n}`)).status, 204);
});

test('a disk that is another VM\'s kernel cannot be attached read-write, whichever starts first', needs, async () => {
  writeFileSync(join(d.images, 'idle2'), readFileSync(join(d.images, 'idle')));
  await create({ name: 'boots', memory: 16, kernel: 'idle2' });
  await create({ name: 'writes', memory: 16, kernel: 'idle', disks: [{ path: 'idle2', format: 'raw' }] });
  assert.equal((await start('boots')).status, 200);
  const s = await start('writes');
  assert.equal(s.status, 409, s.error);
  assert.match(s.error, /^disks\[0\]: .*idle2 is the kernel of VM 'boots' and cannot be attached read-write while that VM runs$/);
  await kill('boots');
  assert.equal((await start('writes')).status, 200);
  const b = await start('boots');
  assert.equal(b.status, 409, b.error);
  assert.match(b.error, /^kernel: .*idle2 is a read-write disk of VM 'writes' and cannot be used as the kernel while that VM runs$/);
  await kill('writes');
  // One VM cannot boot from a file it writes either.
  const { code, err } = await cliRefused(['--disk', `${join(d.images, 'idle')},format=raw`]);
  assert.equal(code, 1, err);
  assert.match(err, /^tsvisor: disks\[0\]: .*idle is also used as kernel by this VM; it cannot be attached read-write too\n$/);
  for (const n of ['boots', 'writes']) assert.equal((await api(d, 'DELETE', `/v1/vms/${n}`)).status, 204);
});

test('process-isolated VMs take the same locks, and a killed VM process drops them', { ...needs, skip: needs.skip || (haveAddon ? false : 'build/image-lock.node is not built (locks are per process without it)') }, async () => {
  const disk = join(d.images, 'proc.raw');
  qemuImg('create', '-q', '-f', 'raw', disk, '1M');
  await create({ name: 'pw', memory: 16, kernel: 'idle', isolation: 'process', disks: [{ path: 'proc.raw' }] });
  assert.equal((await start('pw')).status, 200);
  await until('the VM process locks its disk', () => ofdLocks(disk).includes('WRITE'), 30_000);
  const pid = d.host.vms.get('pw')!.pid!;
  // A `tsvisor run` of the same disk, another process: refused by the lock alone.
  const { code, err } = await cliRefused(['--disk', `${disk},format=raw`]);
  assert.equal(code, 1, err);
  assert.match(err, /^tsvisor: disks\[0\]: .*proc\.raw is attached read-write by another VM or process; it cannot be used read-write here\n$/);
  process.kill(pid, 'SIGKILL');
  await until('the VM process is gone', () => d.host.vms.get('pw')!.handle === null, 30_000);
  assert.deepEqual(ofdLocks(disk), [], 'its lock went with it');
  assert.equal((await api(d, 'DELETE', '/v1/vms/pw')).status, 204);
});

test('tsvisor run and a daemon VM cannot share a writable disk, in either order', { ...needs, skip: needs.skip || (haveAddon ? false : 'build/image-lock.node is not built (locks are per process without it)') }, async () => {
  const disk = join(d.images, 'cli.raw');
  qemuImg('create', '-q', '-f', 'raw', disk, '1M');
  const run = cliRun(['--disk', `${disk},format=raw`]);
  await until('tsvisor run locks the disk', () => ofdLocks(disk).includes('WRITE') || run.child.exitCode !== null, 60_000);
  assert.equal(run.child.exitCode, null, 'tsvisor run is running');
  await create({ name: 'thr', memory: 16, kernel: 'idle', disks: [{ path: 'cli.raw' }] });
  await create({ name: 'prc', memory: 16, kernel: 'idle', isolation: 'process', disks: [{ path: 'cli.raw' }] });
  for (const n of ['thr', 'prc']) {
    const s = await start(n);
    assert.equal(s.status, 409, `${n}: ${s.error}`);
    assert.match(s.error, /^disks\[0\]: .*cli\.raw is attached read-write by another VM or process; it cannot be used read-write here$/);
    assert.notEqual(d.host.vms.get(n)!.state, 'running');
  }
  run.child.kill('SIGTERM');
  await run.done;
  // Now the daemon VM holds it, and tsvisor run is the one refused.
  assert.equal((await start('thr')).status, 200);
  const { code, err } = await cliRefused(['--disk', `${disk},format=raw`]);
  assert.equal(code, 1, err);
  assert.match(err, /^tsvisor: disks\[0\]: .*cli\.raw is attached read-write by another VM or process/);
  await kill('thr');
  for (const n of ['thr', 'prc']) assert.equal((await api(d, 'DELETE', `/v1/vms/${n}`)).status, 204);
});
