// The fleet end to end with the default guest (real kernel, busybox): one
// etcd on loopback and three `tsvisor serve --fleet` daemons sharing an
// images directory (shared storage).
// - Drain: three VMs on h1 run a workload that prints a running checksum;
//   h1 is drained; all three move by live migration, the workloads go on
//   and finish with the right output (both hosts' console logs together).
// - HA: an `ha: true` VM with an ext4 disk writes and fsyncs a counter;
//   its host is SIGKILLed; the VM boots on another host after the lease
//   expired, and the disk holds the last write that was fsynced.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleClient, makeImages, until } from './daemon-helpers.js';
import { EtcdCluster, etcdBinary } from './lib/etcd.js';
import { MemberDaemon, waitHosts } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

const have = (t: string) => spawnSync('sh', ['-c', `command -v ${t} || test -x /usr/sbin/${t} || test -x /sbin/${t}`]).status === 0;
const missing = [...(etcdBinary() === null ? ['etcd'] : []), ...['qemu-img', 'mkfs.ext4'].filter((t) => !have(t))];
// Opt-in: three Debian guests booting at once under one-core daemons took over
// 30 minutes on a loaded 2-core host, and this test has not yet passed end to end.
const optIn = process.env.TSVISOR_FLEET_E2E === '1';
const skip = !optIn
  ? 'set TSVISOR_FLEET_E2E=1 to run (three full guests; not yet passed end to end, see docs/fleet.md)'
  : missing.length > 0 ? `missing ${missing.join(', ')}` : false;
const sbin = (t: string) => (spawnSync('sh', ['-c', `command -v ${t}`]).status === 0 ? t : `/usr/sbin/${t}`);
const LEASE = 4;
let dir = '';
let images = '';
let etcd: EtcdCluster;
let hosts: MemberDaemon[] = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-e2e-'));
  images = (await makeImages(true)).images;
  etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
  hosts = ['h1', 'h2', 'h3'].map((name) => new MemberDaemon({ name, dir, images, endpoints: etcd.endpoints, budgetMiB: 1024, leaseSeconds: LEASE }));
  await Promise.all(hosts.map((h) => h.start()));
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3']);
});

after(async () => {
  await Promise.all(hosts.map((h) => h.stop('SIGKILL')));
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (images) rmSync(join(images, '..'), { recursive: true, force: true });
});

/** The guest's checksum after n iterations, as its shell computes it. */
function checksum(n: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s = (s * 31 + i) % 1000003;
  return s;
}

/** Console log text of VM `name` on every host (a host keeps the log of a VM that left it). */
function logsOf(name: string): string {
  let out = '';
  for (const h of hosts) for (const f of [`${name}.log.1`, `${name}.log`]) {
    const p = join(h.stateDir, 'logs', f);
    if (existsSync(p)) out += readFileSync(p, 'latin1');
  }
  return out;
}

/** The TICK lines of `name` form one run with the right checksums; returns the last tick. */
function checkTicks(name: string): number {
  const seen = new Map<number, number>();
  for (const m of logsOf(name).matchAll(/TICK (\d+) (\d+)/g)) seen.set(Number(m[1]), Number(m[2]));
  const ks = [...seen.keys()].sort((x, y) => x - y);
  for (let i = 1; i < ks.length; i++) assert.equal(ks[i], ks[i - 1]! + 1, `${name}: a gap after TICK ${ks[i - 1]}`);
  for (const k of ks) assert.equal(seen.get(k), checksum(k), `${name}: TICK ${k} has a wrong checksum`);
  return ks.at(-1) ?? 0;
}

async function bootToShell(h: MemberDaemon, name: string): Promise<ConsoleClient> {
  const c = await ConsoleClient.open(h.sock, name);
  await c.waitFor('tsvisor guest ready', 900_000);
  // The prompt, wherever it is: a late kernel message may follow it on the console.
  await c.waitFor('~ # ', 120_000, c.output.indexOf('tsvisor guest ready'));
  return c;
}

const where = async (name: string) => {
  const out: MemberDaemon[] = [];
  for (const h of hosts.filter((x) => x.alive)) if ((await h.api('GET', `/v1/vms/${name}`)).json?.state === 'running') out.push(h);
  return out;
};

test('drain a host running three VMs with a checksum workload: all move, the workloads finish with correct output', { skip, timeout: budget(40 * 60_000) }, async () => {
  const h1 = hosts[0]!;
  const names = ['w1', 'w2', 'w3'];
  for (const n of names) {
    const r = await h1.api('POST', '/v1/vms', { name: n, kernel: 'vmlinux', initrd: 'initrd', memory: 128 });
    assert.equal(r.status, 201, r.text);
    assert.equal((await h1.api('POST', `/v1/vms/${n}/start`)).status, 200);
  }
  for (const n of names) {
    const c = await bootToShell(h1, n);
    // Runs until /tmp/stop exists, then prints DONE with its last tick and checksum.
    c.send('(i=0; s=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); echo "TICK $i $s"; sleep 0.2; done; echo "DONE $i $s") &\r');
    c.close();
  }
  for (const n of names) await until(`${n}'s workload to tick`, () => checkTicks(n) > 3, 300_000, 500);

  const r = await hosts[1]!.api('POST', '/v1/fleet/hosts/h1/drain', {});
  assert.equal(r.status, 202, r.text);
  let d: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the drain to end', async () => {
    d = (await hosts[2]!.api('GET', '/v1/fleet/hosts/h1/drain')).json;
    return d?.state === 'done' || d?.state === 'incomplete';
  }, 1_800_000, 500, () => JSON.stringify(d));
  assert.equal(d.state, 'done', JSON.stringify(d));
  for (const n of names) {
    const on = await where(n);
    assert.equal(on.length, 1, `${n} runs on ${on.map((h) => h.opts.name).join(',')}`);
    assert.notEqual(on[0]!.opts.name, 'h1');
    const last = checkTicks(n);
    await until(`${n} to tick on ${on[0]!.opts.name}`, () => checkTicks(n) > last + 2, 300_000, 500);
    const c = await ConsoleClient.open(on[0]!.sock, n);
    c.send('touch /tmp/stop\r');
    await until(`${n}'s workload to finish`, () => /DONE \d+ \d+/.test(logsOf(n)), 300_000, 500);
    c.close();
    const m = /DONE (\d+) (\d+)/.exec(logsOf(n))!;
    const ticks = checkTicks(n);
    assert.equal(Number(m[1]), ticks, `${n}: DONE after the last TICK`);
    assert.equal(Number(m[2]), checksum(ticks), `${n}: the final checksum`);
  }
  assert.deepEqual(((await h1.api('GET', '/v1/vms')).json as unknown[]).length, 0, 'h1 is empty');
  for (const n of names) {
    const on = (await where(n))[0]!;
    assert.equal((await on.api('DELETE', `/v1/vms/${n}?force=true`)).status, 204);
  }
  assert.equal((await hosts[1]!.api('POST', '/v1/fleet/hosts/h1/undrain')).status, 200);
});

test('SIGKILL the host of an HA VM on shared storage: it boots on another host and its fsynced data is intact', { skip, timeout: budget(40 * 60_000) }, async () => {
  const img = join(images, 'ha.img');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'raw', img, '32M']).status, 0);
  const mk = spawnSync(sbin('mkfs.ext4'), ['-q', '-F', img], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const h2 = hosts[1]!;
  const r = await h2.api('POST', '/v1/vms', { name: 'hav', kernel: 'vmlinux', initrd: 'initrd', memory: 128, ha: true, disks: [{ path: 'ha.img', format: 'raw' }] });
  assert.equal(r.status, 201, r.text);
  assert.equal((await h2.api('POST', '/v1/vms/hav/start')).status, 200);
  const c = await bootToShell(h2, 'hav');
  c.send('mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((6*7))\r');
  await c.waitFor('mounted-42', 120_000);
  c.send('(i=0; s=0; while true; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); echo "$i $s" > /mnt/state.tmp && mv /mnt/state.tmp /mnt/state && sync && echo "SYNCED $i $s"; done) &\r');
  await until('a few fsynced writes', () => [...c.output.matchAll(/SYNCED (\d+)/g)].length > 5, 300_000, 200);
  await h2.stop('SIGKILL');
  const synced = Math.max(...[...c.output.matchAll(/SYNCED (\d+)/g)].map((m) => Number(m[1])));
  c.close();

  let on: MemberDaemon[] = [];
  await until('hav to run on another host', async () => (on = await where('hav')).length > 0, 300_000, 200);
  assert.equal(on.length, 1);
  const c2 = await bootToShell(on[0]!, 'hav');
  c2.send('mkdir -p /mnt && mount /dev/vda /mnt && echo "STATE $(cat /mnt/state)"\r');
  await c2.waitFor(/STATE \d+ \d+/, 120_000);
  const m = /STATE (\d+) (\d+)/.exec(c2.output)!;
  c2.close();
  const n = Number(m[1]);
  assert.ok(n >= synced, `the disk holds write ${n}, but ${synced} was fsynced before the kill`);
  assert.equal(Number(m[2]), checksum(n), 'the record on the disk is whole');
});
