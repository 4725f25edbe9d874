// The fleet through a real etcd (one member on loopback) and three real
// `tsvisor serve --fleet` daemons (separate state directories, sockets and
// ports, one shared images directory): registration with capacity and
// keep-alive, a clean stop leaving the fleet, 50 concurrent placements across
// the three daemons (no host over budget, no name twice), a drain that
// live-migrates three running VMs, and etcd restarted under running VMs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeImages, until } from './daemon-helpers.js';
import { EtcdCluster, etcdBinary } from './lib/etcd.js';
import { MemberDaemon, waitHosts } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

const skip = etcdBinary() === null ? 'etcd is not installed (Debian: etcd-server)' : false;
// Longer than the HA tests' lease: 50 placements at once on a loaded machine must not look like a dead host.
const LEASE = 8;
const BUDGET = 256;
let dir = '';
let etcd: EtcdCluster;
let hosts: MemberDaemon[] = [];
let images = '';

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-'));
  images = (await makeImages(false)).images;
  etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
  hosts = ['h1', 'h2', 'h3'].map((name, i) => new MemberDaemon({ name, dir, images, endpoints: etcd.endpoints, budgetMiB: BUDGET, leaseSeconds: LEASE, labels: [`zone=${i === 2 ? 'b' : 'a'}`] }));
  await Promise.all(hosts.map((h) => h.start()));
});

after(async () => {
  await Promise.all(hosts.map((h) => h.stop('SIGKILL')));
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (images) rmSync(join(images, '..'), { recursive: true, force: true });
});

const instructions = async (h: MemberDaemon, name: string) => ((await h.api('GET', `/v1/vms/${name}/stats`)).json?.instructions as number) ?? 0;

test('members register with their capacity, stay through keep-alives, and a clean stop leaves the fleet', { skip, timeout: budget(300_000) }, async () => {
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3']);
  const r = await hosts[1]!.api('GET', '/v1/fleet/hosts');
  assert.equal(r.status, 200, r.text);
  for (const h of r.json as Record<string, any>[]) { // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(h.memoryBudgetMiB, BUDGET);
    assert.equal(h.cores, 1);
    assert.equal(h.leaseSeconds, LEASE);
    assert.ok(h.images.includes('spin') && h.images.includes('idle'), JSON.stringify(h.images));
    assert.match(h.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(h.labels.zone, h.name === 'h3' ? 'b' : 'a');
    assert.ok(h.freeMemoryMiB > 0);
  }
  // Keep-alives: after three lease times every host is still there with the same lease.
  const metrics0 = (await hosts[0]!.api('GET', '/metrics')).text;
  const beats0 = Number(/^tsvisor_fleet_heartbeats_total (\d+)/m.exec(metrics0)?.[1]);
  assert.ok(beats0 >= 0, metrics0);
  // A keep-alive goes every quarter of the lease: 13 more span over three lease times.
  await until('three lease times of heartbeats', async () => {
    const m = (await hosts[0]!.api('GET', '/metrics')).text;
    return Number(/^tsvisor_fleet_heartbeats_total (\d+)/m.exec(m)?.[1]) > beats0 + 12;
  }, 120_000, 200);
  await waitHosts(hosts[2]!, ['h1', 'h2', 'h3'], 1000);
  const m = (await hosts[0]!.api('GET', '/metrics')).text;
  assert.match(m, /tsvisor_fleet_host_up\{host="h2"\} 1/);
  assert.match(m, /^tsvisor_fleet_lease_held 1/m);

  // A clean stop revokes the lease: gone at once (well before the lease would expire) and an event says so.
  await hosts[2]!.stop('SIGTERM');
  assert.equal(await hosts[2]!.exited, 0, hosts[2]!.stderr);
  await waitHosts(hosts[0]!, ['h1', 'h2'], 60_000);
  const ev = (await hosts[0]!.api('GET', '/v1/fleet/events')).json as { kind: string; host: string }[];
  assert.ok(ev.some((e) => e.kind === 'left' && e.host === 'h3'), JSON.stringify(ev));
  assert.ok(ev.some((e) => e.kind === 'joined' && e.host === 'h1'));
  await hosts[2]!.start();
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3']);
});

test('50 concurrent fleet creates across three daemons: no host over budget, no name twice', { skip, timeout: budget(300_000) }, async () => {
  // 40 names, 10 of them asked twice, 32 MiB each: the fleet holds 3 * 256 / 32 = 24.
  const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
  const reqs = [...names, ...names.slice(0, 10)].map((name, i) => ({ name, via: hosts[i % 3]! }));
  const replies = await Promise.all(reqs.map(({ name, via }) => via.api('POST', '/v1/fleet/vms', { vm: { name, memory: 32, kernel: 'idle' }, policy: i2policy(name) })));
  const ok = replies.filter((r) => r.status === 201);
  for (const r of replies) assert.ok(r.status === 201 || r.status === 409, `${r.status} ${r.text}`);
  assert.equal(ok.length, 24, replies.map((r) => r.text).join('\n'));
  const placed = ok.map((r) => r.json.vm.name as string);
  assert.equal(new Set(placed).size, placed.length, 'a name was placed twice');

  // Every daemon agrees with etcd: each VM exists on exactly one host, each host within its budget.
  const where = new Map<string, string[]>();
  for (const h of hosts) {
    const vms = (await h.api('GET', '/v1/vms')).json as { name: string }[];
    const stats = (await h.api('GET', '/v1/host/stats')).json;
    assert.ok(stats.memoryReservedMiB <= BUDGET, `${h.opts.name} reserved ${stats.memoryReservedMiB} MiB`);
    for (const v of vms) where.set(v.name, [...(where.get(v.name) ?? []), h.opts.name]);
  }
  for (const n of placed) assert.equal(where.get(n)?.length, 1, `${n} on ${where.get(n)?.join(',')}`);
  const fleetHosts = (await hosts[0]!.api('GET', '/v1/fleet/hosts')).json as { name: string; allocatedMiB: number }[];
  for (const h of fleetHosts) assert.ok(h.allocatedMiB <= BUDGET, `${h.name} allocated ${h.allocatedMiB}`);
  const recs = (await hosts[1]!.api('GET', '/v1/fleet/vms')).json as { name: string; host: string }[];
  assert.deepEqual(recs.map((r) => r.name).sort(), [...placed].sort());
  for (const r of recs) assert.deepEqual(where.get(r.name), [r.host]);

  // A name taken in the fleet cannot be created directly on another daemon either.
  const taken = recs[0]!;
  const other = hosts.find((h) => h.opts.name !== taken.host)!;
  const dup = await other.api('POST', '/v1/vms', { name: taken.name, memory: 16, kernel: 'idle' });
  assert.equal(dup.status, 409, dup.text);
  assert.match(dup.json.error, /already exists in the fleet/);

  // Pinned by label: only h3 has zone=b.
  for (const r of recs) await hosts.find((h) => h.opts.name === r.host)!.api('DELETE', `/v1/vms/${r.name}`);
  const pinned = await hosts[0]!.api('POST', '/v1/fleet/vms', { vm: { name: 'pinned', memory: 32, kernel: 'idle' }, labels: { zone: 'b' } });
  assert.equal(pinned.status, 201, pinned.text);
  assert.equal(pinned.json.host, 'h3');
  const nowhere = await hosts[0]!.api('POST', '/v1/fleet/vms', { vm: { name: 'nowhere', memory: 32, kernel: 'idle' }, labels: { zone: 'c' } });
  assert.equal(nowhere.status, 409);
  assert.match(nowhere.json.error, /no label zone=c/);
  assert.equal((await hosts[2]!.api('DELETE', '/v1/vms/pinned')).status, 204);
  await until('the fleet to be empty', async () => ((await hosts[0]!.api('GET', '/v1/fleet/vms')).json as unknown[]).length === 0, 30_000);
});

/** Half the requests pack, half spread: both must hold the invariants. */
function i2policy(name: string): 'spread' | 'pack' {
  return Number(name.slice(1)) % 2 === 0 ? 'spread' : 'pack';
}

test('drain: three running VMs move off a host by live migration, which becomes unschedulable; undrain', { skip, timeout: budget(600_000) }, async () => {
  const h1 = hosts[0]!;
  for (const n of ['d1', 'd2', 'd3']) {
    const r = await h1.api('POST', '/v1/vms', { name: n, memory: 16, kernel: 'spin' });
    assert.equal(r.status, 201, r.text);
    assert.equal((await h1.api('POST', `/v1/vms/${n}/start`)).status, 200);
  }
  // A fourth VM that no other host has room for: it must be reported, not lost.
  assert.equal((await h1.api('POST', '/v1/vms', { name: 'huge', memory: 200, kernel: 'idle' })).status, 201);
  for (const n of ['d1', 'd2', 'd3']) await until(`${n} to run`, async () => (await instructions(h1, n)) > 1e6, 120_000);
  const before = new Map<string, number>();
  for (const n of ['d1', 'd2', 'd3']) before.set(n, await instructions(h1, n));
  // Room elsewhere: h2 and h3 have 256 MiB each; fill them so 'huge' (200) fits nowhere.
  assert.equal((await hosts[1]!.api('POST', '/v1/vms', { name: 'fill2', memory: 100, kernel: 'idle' })).status, 201);
  assert.equal((await hosts[2]!.api('POST', '/v1/vms', { name: 'fill3', memory: 100, kernel: 'idle' })).status, 201);

  const r = await hosts[1]!.api('POST', '/v1/fleet/hosts/h1/drain', {});
  assert.equal(r.status, 202, r.text);
  let d: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the drain to end', async () => {
    d = (await hosts[2]!.api('GET', '/v1/fleet/hosts/h1/drain')).json;
    return d?.state === 'done' || d?.state === 'incomplete';
  }, 400_000, 200, () => JSON.stringify(d));
  assert.equal(d.state, 'incomplete', JSON.stringify(d));
  const byName = new Map<string, any>(d.vms.map((v: any) => [v.name, v])); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(byName.get('huge').phase, 'failed');
  assert.match(byName.get('huge').error, /placement: no host can take 200 MiB/);
  assert.equal((await h1.api('GET', '/v1/vms/huge')).json.state, 'created', 'the VM that could not move is still there');

  for (const n of ['d1', 'd2', 'd3']) {
    assert.equal(byName.get(n).phase, 'moved', JSON.stringify(byName.get(n)));
    const to = hosts.find((h) => h.opts.name === byName.get(n).to)!;
    assert.notEqual(to.opts.name, 'h1');
    assert.equal((await h1.api('GET', `/v1/vms/${n}`)).status, 404);
    assert.equal((await to.api('GET', `/v1/vms/${n}`)).json.state, 'running');
    // Its instruction count went on from where it was: moved, not rebooted.
    const n0 = await instructions(to, n);
    assert.ok(n0 > before.get(n)!, `${n}: ${n0} after ${before.get(n)}`);
    await until(`${n} to keep running on ${to.opts.name}`, async () => (await instructions(to, n)) > n0 + 1e6, 120_000);
  }
  await until('the records to follow', async () => {
    const recs = (await h1.api('GET', '/v1/fleet/vms')).json as { name: string; host: string; state: string }[];
    return ['d1', 'd2', 'd3'].every((n) => recs.find((x) => x.name === n)?.host === byName.get(n).to && recs.find((x) => x.name === n)?.state === 'running');
  }, 30_000);
  const hv = (await h1.api('GET', '/v1/fleet/hosts')).json as { name: string; unschedulable: boolean; allocatedMiB: number }[];
  assert.equal(hv.find((h) => h.name === 'h1')!.unschedulable, true);
  for (const h of hv) assert.ok(h.allocatedMiB <= BUDGET);
  // Nothing is placed on a drained host; after undrain it is again.
  assert.equal((await hosts[2]!.api('DELETE', '/v1/vms/fill3')).status, 204);
  assert.equal((await hosts[1]!.api('DELETE', '/v1/vms/fill2')).status, 204);
  for (let i = 0; i < 3; i++) {
    const p = await h1.api('POST', '/v1/fleet/vms', { vm: { name: `after${i}`, memory: 16, kernel: 'idle' }, policy: 'spread' });
    assert.equal(p.status, 201, p.text);
    assert.notEqual(p.json.host, 'h1');
  }
  assert.equal((await hosts[2]!.api('POST', '/v1/fleet/hosts/h1/undrain')).status, 200);
  // pack: the host with the least room that still fits, h1 (56 MiB left beside 'huge').
  const p = await h1.api('POST', '/v1/fleet/vms', { vm: { name: 'back', memory: 40, kernel: 'idle' }, policy: 'pack' });
  assert.equal(p.json.host, 'h1', p.text);
  const ev = (await h1.api('GET', '/v1/fleet/events')).json as { kind: string; vm?: string }[];
  assert.equal(ev.filter((e) => e.kind === 'migrated').length, 3);
  assert.ok(ev.some((e) => e.kind === 'undrain'));
});

test('etcd restarted under running VMs: they keep running and every daemon rejoins', { skip, timeout: budget(300_000) }, async () => {
  // d1..d3 run somewhere after the drain.
  const recs = (await hosts[0]!.api('GET', '/v1/fleet/vms')).json as { name: string; host: string }[];
  const d1 = recs.find((r) => r.name === 'd1')!;
  const owner = hosts.find((h) => h.opts.name === d1.host)!;
  await etcd.stopMember(0);
  // Unreachable meanwhile: the fleet API says so, the daemon's own API goes on.
  const down = await owner.api('GET', '/v1/fleet/hosts');
  assert.equal(down.status, 503, down.text);
  const n0 = await instructions(owner, 'd1');
  await until('d1 to run on without etcd', async () => (await instructions(owner, 'd1')) > n0 + 1e6, 60_000);
  await etcd.restartMember(0);
  await waitHosts(hosts[1]!, ['h1', 'h2', 'h3'], 120_000);
  // Each daemon holds a lease again (a daemon silent for its lease time took a new one).
  for (const h of hosts) await until(`${h.opts.name} to hold its lease`, async () => /^tsvisor_fleet_lease_held 1/m.test((await h.api('GET', '/metrics')).text), 60_000, 100);
  assert.equal((await owner.api('GET', '/v1/vms/d1')).json.state, 'running');
  const n1 = await instructions(owner, 'd1');
  assert.ok(n1 > n0);
  // Placement works again.
  const p = await hosts[2]!.api('POST', '/v1/fleet/vms', { vm: { name: 'after-etcd', memory: 16, kernel: 'idle' } });
  assert.equal(p.status, 201, p.text);
});
