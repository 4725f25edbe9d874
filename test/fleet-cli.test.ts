// `tsvisor serve --fleet` options and `tsvisor fleet ...` as a user types
// them, against a real etcd with authentication enabled (etcdctl sets up
// the root user): bad options are one-line errors, a wrong password or an
// unreachable etcd stops the daemon with a clear message, two members join
// with the password, and the fleet commands place, list, drain, undrain
// and show events.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeImages, until } from './daemon-helpers.js';
import { EtcdCluster, etcdBinary, freePort } from './lib/etcd.js';
import { FLEET_TOKEN } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const skip = etcdBinary() === null || spawnSync('sh', ['-c', 'command -v etcdctl']).status !== 0 ? 'etcd or etcdctl is not installed (Debian: etcd-server, etcd-client)' : false;
const PASSWORD = 'fleet-etcd-password';
let dir = '';
let images = '';
let etcd: EtcdCluster;
const children: ReturnType<typeof spawn>[] = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-cli-'));
  images = (await makeImages(false)).images;
  etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
  const ctl = (...a: string[]) => spawnSync('etcdctl', ['--endpoints', etcd.endpoints[0]!, ...a], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
  assert.equal(ctl('user', 'add', `root:${PASSWORD}`).status, 0);
  const en = ctl('auth', 'enable');
  assert.equal(en.status, 0, en.stderr);
  writeFileSync(join(dir, 'pw'), PASSWORD, { mode: 0o600 });
  writeFileSync(join(dir, 'bad-pw'), 'not-the-password', { mode: 0o600 });
  writeFileSync(join(dir, 'token'), FLEET_TOKEN, { mode: 0o600 });
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (images) rmSync(join(images, '..'), { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const serveArgs = (name: string, extra: string[]) => [
  'serve', '--state-dir', join(dir, name), '--socket', join(dir, `${name}.sock`), '--images-dir', images, '--listen', '127.0.0.1:0',
  '--token-file', join(dir, 'token'), '--memory-budget', '256M', '--cpus', '1', '--host-name', name, '--lease', '4', ...extra,
];

test('bad fleet options are one-line usage errors; a wrong password or no etcd stops the daemon with the reason', { skip, timeout: budget(180_000) }, async () => {
  const ep = etcd.endpoints[0]!;
  const noListen = await run(['serve', '--state-dir', join(dir, 'x'), '--socket', join(dir, 'x.sock'), '--fleet', ep, '--host-name', 'x']);
  assert.equal(noListen.code, 2);
  assert.match(noListen.stderr, /--fleet needs --listen/);
  const badEp = await run(serveArgs('x', ['--fleet', 'etcd:2379']));
  assert.equal(badEp.code, 2);
  assert.match(badEp.stderr, /invalid --fleet 'etcd:2379'/);
  const badName = await run(serveArgs('x', ['--fleet', ep, '--host-name', '-bad']));
  assert.notEqual(badName.code, 0);
  const badLease = await run(serveArgs('x', ['--fleet', ep, '--lease', '1']));
  assert.equal(badLease.code, 2);
  assert.match(badLease.stderr, /--lease/);
  const halfTls = await run(serveArgs('x', ['--fleet', ep, '--etcd-cert', 'c.pem']));
  assert.equal(halfTls.code, 2);
  assert.match(halfTls.stderr, /--etcd-cert and --etcd-key go together/);

  const noAuth = await run(serveArgs('x', ['--fleet', ep]));
  assert.notEqual(noAuth.code, 0);
  assert.match(noAuth.stderr, /cannot join the fleet at/);
  const wrong = await run(serveArgs('x', ['--fleet', ep, '--etcd-user', 'root', '--etcd-password-file', join(dir, 'bad-pw')]));
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /cannot join the fleet at .*(authentication|password|auth)/i);
  const closed = await run(serveArgs('x', ['--fleet', `http://127.0.0.1:${await freePort()}`]));
  assert.notEqual(closed.code, 0);
  assert.match(closed.stderr, /cannot join the fleet at/);
  assert.equal(closed.stderr.trim().split('\n').length, 1, closed.stderr);
});

test('tsvisor fleet: hosts, create, vms, drain --wait, undrain, events, with etcd authentication', { skip, timeout: budget(300_000) }, async () => {
  const ep = etcd.endpoints[0]!;
  const ports: number[] = [];
  for (const name of ['m1', 'm2']) {
    const c = spawn(process.execPath, [CLI, ...serveArgs(name, ['--fleet', ep, '--etcd-user', 'root', '--etcd-password-file', join(dir, 'pw'), '--label', `name=${name}`])], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(c);
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await until(`${name} to listen`, () => /and [\d.]+:(\d+)/.test(err) || c.exitCode !== null, 60_000);
    assert.match(err, /member 'm\d' of the fleet/, err);
    ports.push(Number(/and [\d.]+:(\d+)/.exec(err)![1]));
  }
  const sock = ['--socket', join(dir, 'm1.sock')];
  // Through TCP with a token, as from another machine.
  const viaTcp = ['--url', `http://127.0.0.1:${ports[1]}`, '--token-file', join(dir, 'token')];
  let hosts = await run(['fleet', 'hosts', ...viaTcp]);
  await until('both hosts listed', async () => /m1 .*ready[\s\S]*m2 .*ready/.test((hosts = await run(['fleet', 'hosts', ...viaTcp])).stdout), 60_000, 200);
  assert.match(hosts.stdout, /^HOST\s+STATE\s+CORES\s+BUDGET\s+ALLOCATED/);
  assert.match(hosts.stdout, /m1\s+ready\s+1\s+256M\s+0M\s+0\s+name=m1/);

  const pinned = await run(['fleet', 'create', 'p1', '--kernel', 'spin', '--mem', '32M', '--label', 'name=m2', '--start', ...sock]);
  assert.equal(pinned.code, 0, pinned.stderr);
  assert.equal(pinned.stdout, 'p1: placed on m2 and started\n');
  const dup = await run(['fleet', 'create', 'p1', '--kernel', 'idle', '--mem', '16M', ...sock]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /already exists in the fleet/);
  const none = await run(['fleet', 'create', 'p2', '--kernel', 'idle', '--mem', '1G', ...sock]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no host can take 1024 MiB/);
  let vms = await run(['fleet', 'vms', ...sock]);
  await until('p1 running in the fleet view', async () => /p1\s+m2\s+running\s+32M\s+no/.test((vms = await run(['fleet', 'vms', ...sock])).stdout), 60_000, 200, () => vms.stdout);

  const drain = await run(['fleet', 'drain', 'm2', '--wait', ...sock]);
  assert.equal(drain.code, 0, drain.stderr + drain.stdout);
  assert.match(drain.stdout, /m2: unschedulable; drain done\n\s+p1\s+moved\s+m1/);
  assert.match((await run(['fleet', 'hosts', ...sock])).stdout, /m2\s+drained/);
  const un = await run(['fleet', 'undrain', 'm2', ...sock]);
  assert.equal(un.stdout, 'm2: schedulable\n');
  const ev = await run(['fleet', 'events', ...sock]);
  assert.match(ev.stdout, /placed .*p1 \(32 MiB\) placed on m2/);
  assert.match(ev.stdout, /migrated .*p1 moved from m2 to m1/);
  assert.match(ev.stdout, /undrain .*m2 is schedulable again/);
  const bad = await run(['fleet', 'frobnicate', ...sock]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown fleet command 'frobnicate'/);
});
