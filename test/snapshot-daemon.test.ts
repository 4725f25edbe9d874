// Snapshots through the daemon: PUT /v1/vms/NAME/snapshot and `tsvisor
// snapshot` against a real daemon on a temporary socket, with a tiny idle
// guest (no boot needed). Bad names and bodies are 400, an unknown VM 404, a
// stopped one 409; a snapshot lands under the state directory and `tsvisor run
// --restore` brings it back.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { readSnapshot } from '../src/vm/snapshot.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: 1024, cpus: 1 });
});
after(async () => {
  await d?.cleanup();
});

async function expectError(method: string, path: string, body: unknown, status: number, re: RegExp): Promise<void> {
  const r = await api(d, method, path, body);
  assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  assert.match(r.json?.error ?? '', re);
}

test('PUT /v1/vms/NAME/snapshot: errors, a snapshot in the state directory, and its restore', { timeout: budget(180_000) }, async () => {
  assert.equal((await api(d, 'POST', '/v1/vms', { name: 'snap', memory: 16, kernel: 'idle' })).status, 201);
  await expectError('PUT', '/v1/vms/nope/snapshot', { dir: 'a' }, 404, /no VM named/);
  await expectError('PUT', '/v1/vms/snap/snapshot', { dir: 'a' }, 409, /not running/);
  assert.equal((await api(d, 'POST', '/v1/vms/snap/start')).status, 200);
  await until('the guest to run', async () => (await api(d, 'GET', '/v1/vms/snap/stats')).json?.instructions > 0, 60_000);
  for (const body of [{ dir: '../escape' }, { dir: 'a/b' }, { dir: '' }, { dir: 'a', extra: 1 }, {}, []]) {
    await expectError('PUT', '/v1/vms/snap/snapshot', body, 400, /dir|body/);
  }
  await expectError('POST', '/v1/vms/snap/snapshot', { dir: 'a' }, 405, /not allowed/);

  const r = await api(d, 'PUT', '/v1/vms/snap/snapshot', { dir: 'first' });
  assert.equal(r.status, 200, r.text);
  const path = join(d.dir, 'state', 'snapshots', 'first');
  assert.equal(r.json.dir, path);
  assert.ok(r.json.instret > 0);
  assert.equal(readSnapshot(path).config.memMiB, 16);
  await expectError('PUT', '/v1/vms/snap/snapshot', { dir: 'first' }, 400, /not empty/);

  // The client command, over the same socket (spawned, not spawnSync: the daemon runs in this process).
  const cli = spawn(process.execPath, [CLI, 'snapshot', '--socket', d.socketPath, 'snap', 'second'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let cerr = '';
  cli.stdout.on('data', (b: Buffer) => (out += b.toString()));
  cli.stderr.on('data', (b: Buffer) => (cerr += b.toString()));
  const code = await new Promise<number | null>((resolve) => cli.on('close', resolve));
  assert.equal(code, 0, cerr);
  assert.match(out, /^snap: snapshot .*second at instruction \d+/);
  assert.ok(existsSync(join(d.dir, 'state', 'snapshots', 'second', 'snapshot.json')));

  // Restore it in a new process; it runs (idle) until stopped.
  const child = spawn(process.execPath, [CLI, 'run', '--restore', path], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  try {
    await until('the restore', () => /restored in [\d.]+ ms/.test(err) || child.exitCode !== null, 60_000);
    assert.match(err, /restored in/);
    assert.equal(child.exitCode, null, err);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal((await api(d, 'POST', '/v1/vms/snap/kill')).status, 200);

  // A daemon VM created from the snapshot starts where it was saved.
  await expectError('POST', '/v1/vms', { name: 'r1', memory: 16, kernel: 'idle', snapshot: 'nope' }, 400, /^snapshot: .*missing/);
  await expectError('POST', '/v1/vms', { name: 'r1', memory: 32, kernel: 'idle', snapshot: 'first' }, 400, /^memory: the snapshot has 16 MiB/);
  await expectError('POST', '/v1/vms', { name: 'r1', memory: 16, kernel: 'idle', snapshot: '../x' }, 400, /^snapshot: /);
  assert.equal((await api(d, 'POST', '/v1/vms', { name: 'r1', memory: 16, kernel: 'idle', snapshot: 'first' })).status, 201);
  assert.equal((await api(d, 'POST', '/v1/vms/r1/start')).status, 200);
  await until('the restored VM to run on from the snapshot', async () => (await api(d, 'GET', '/v1/vms/r1/stats')).json?.instructions > r.json.instret, 60_000);
  // The daemon logs where the restore's time went (a warm worker, unless the last start took it a moment ago).
  assert.ok(d.logs.some((l) => /^r1: restored in [\d.]+ ms \(guest memory mapped\): (warm|new) worker [\d.]+, state read [\d.]+, machine built [\d.]+, memory [\d.]+, devices [\d.]+ ms/.test(l)), d.logs.join('\n'));
  assert.equal((await api(d, 'GET', '/v1/vms/r1')).json.state, 'running');
  assert.equal((await api(d, 'POST', '/v1/vms/r1/kill')).status, 200);
});
