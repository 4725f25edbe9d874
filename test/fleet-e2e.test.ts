// The fleet end to end with the default guest (real kernel, busybox): one
// etcd on loopback and three `tsvisor serve --fleet` daemons sharing an
// images directory (shared storage). Each daemon reaches etcd through a TCP
// proxy of its own, so the test can cut any one of them off.
//
// Three guests boot once, on h1, and serve every scenario in turn (a guest's
// boot is most of this file's time):
// - Drain: the three run a workload printing a running checksum; w1 is also
//   `ha: true` with an ext4 disk it writes and fsyncs. h1 is drained: all
//   three move by live migration, the workloads go on and finish with the
//   right output (the hosts' console logs together).
// - etcd restarted under them: every VM keeps running (the HA one is not
//   fenced: the outage is shorter than the lease) and every daemon rejoins.
// - SIGKILL w1's host: w1 boots on another host after the lease expired and
//   its disk holds the last write that was fsynced before the kill.
// - Partition w1's new host from etcd: it stops w1 itself before w1 starts
//   elsewhere, no two hosts ever run it, its own copy is refused by the disk
//   lock, and healed it rejoins and drops that copy.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleClient, makeImages, until } from './daemon-helpers.js';
import { EtcdCluster, TcpProxy, etcdBinary } from './lib/etcd.js';
import { MemberDaemon, waitHosts } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

const have = (t: string) => spawnSync('sh', ['-c', `command -v ${t} || test -x /usr/sbin/${t} || test -x /sbin/${t}`]).status === 0;
const missing = [...(etcdBinary() === null ? ['etcd'] : []), ...['qemu-img', 'mkfs.ext4'].filter((t) => !have(t))];
const skip = missing.length > 0 ? `missing ${missing.join(', ')}` : false;
const sbin = (t: string) => (spawnSync('sh', ['-c', `command -v ${t}`]).status === 0 ? t : `/usr/sbin/${t}`);
// Long enough that an etcd restart fits inside it (the HA VM must survive it), short enough to wait for twice.
const LEASE = 8;
const MEM = 128;
const NAMES = ['w1', 'w2', 'w3'];
let dir = '';
let images = '';
let etcd: EtcdCluster;
let proxies: TcpProxy[] = [];
let hosts: MemberDaemon[] = [];

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-e2e-'));
  images = (await makeImages(true)).images;
  etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
  const m0 = new URL(etcd.endpoints[0]!);
  proxies = [0, 1, 2].map(() => new TcpProxy('127.0.0.1', Number(m0.port)));
  await Promise.all(proxies.map((p) => p.listen()));
  hosts = ['h1', 'h2', 'h3'].map((name, i) => new MemberDaemon({ name, dir, images, endpoints: [proxies[i]!.url], budgetMiB: 1024, leaseSeconds: LEASE, cpus: 2 }));
  await Promise.all(hosts.map((h) => h.start()));
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3']);
});

after(async () => {
  await Promise.all(hosts.map((h) => h.stop('SIGKILL')));
  await Promise.all(proxies.map((p) => p.cut()));
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

/** The highest `SYNCED i` in `text`: write i reached the disk (sync returned) before the line was printed. */
function lastSynced(text: string): number {
  return Math.max(0, ...[...text.matchAll(/SYNCED (\d+) \d+\r?\n/g)].map((m) => Number(m[1])));
}

async function bootToShell(h: MemberDaemon, name: string): Promise<ConsoleClient> {
  const c = await ConsoleClient.open(h.sock, name);
  await c.waitFor('tsvisor guest ready', 900_000);
  // The prompt, wherever it is: a late kernel message may follow it on the console.
  await c.waitFor('~ # ', 120_000, c.output.indexOf('tsvisor guest ready'));
  return c;
}

/** The live daemons whose own API reports `name` running. */
async function runningOn(name: string): Promise<MemberDaemon[]> {
  const out: MemberDaemon[] = [];
  await Promise.all(
    hosts.filter((x) => x.alive).map(async (h) => {
      const r = await h.api('GET', `/v1/vms/${name}`).catch(() => null);
      if (r?.json?.state === 'running') out.push(h);
    }),
  );
  return out;
}

async function onlyHost(name: string): Promise<MemberDaemon> {
  const on = await runningOn(name);
  assert.equal(on.length, 1, `${name} runs on ${on.map((h) => h.opts.name).join(',') || 'no host'}`);
  return on[0]!;
}

const instructions = async (h: MemberDaemon, name: string) => Number((await h.api('GET', `/v1/vms/${name}/stats`)).json?.instructions ?? 0);
const leaseHeld = async (h: MemberDaemon) => /^tsvisor_fleet_lease_held 1/m.test((await h.api('GET', '/metrics')).text);
const FSYNC_LOOP = '(i=0; s=0; while true; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); echo "$i $s" > /mnt/state.tmp && mv /mnt/state.tmp /mnt/state && sync && echo "SYNCED $i $s"; sleep 0.3; done) &\r';

test('drain a host running three VMs with a checksum workload: all move, the workloads finish with correct output', { skip, timeout: budget(20 * 60_000) }, async () => {
  const img = join(images, 'ha.img');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'raw', img, '32M']).status, 0);
  const mk = spawnSync(sbin('mkfs.ext4'), ['-q', '-F', img], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const h1 = hosts[0]!;
  for (const n of NAMES) {
    const ha = n === 'w1' ? { ha: true, disks: [{ path: 'ha.img', format: 'raw' }] } : {};
    const r = await h1.api('POST', '/v1/vms', { name: n, kernel: 'vmlinux', initrd: 'initrd', memory: MEM, ...ha });
    assert.equal(r.status, 201, r.text);
    assert.equal((await h1.api('POST', `/v1/vms/${n}/start`)).status, 200);
  }
  const consoles = await Promise.all(NAMES.map((n) => bootToShell(h1, n)));
  const c1 = consoles[0]!;
  c1.send('mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((6*7))\r');
  await c1.waitFor('mounted-42', 120_000);
  c1.send(FSYNC_LOOP);
  await c1.waitFor(/SYNCED \d+ \d+\r?\n/, 120_000);
  for (const c of consoles) {
    // Runs until /tmp/stop exists, then prints DONE with its last tick and checksum.
    c.send('(i=0; s=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); echo "TICK $i $s"; sleep 0.2; done; echo "DONE $i $s") &\r');
    c.close();
  }
  for (const n of NAMES) await until(`${n}'s workload to tick`, () => checkTicks(n) > 3, 300_000, 500);
  await until('w1 to fsync', () => lastSynced(logsOf('w1')) > 2, 300_000, 500);

  const r = await hosts[1]!.api('POST', '/v1/fleet/hosts/h1/drain', {});
  assert.equal(r.status, 202, r.text);
  let d: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the drain to end', async () => {
    d = (await hosts[2]!.api('GET', '/v1/fleet/hosts/h1/drain')).json;
    return d?.state === 'done' || d?.state === 'incomplete';
  }, 600_000, 500, () => JSON.stringify(d));
  assert.equal(d.state, 'done', JSON.stringify(d));
  for (const n of NAMES) {
    const on = await onlyHost(n);
    assert.notEqual(on.opts.name, 'h1');
    assert.equal(d.vms.find((v: { name: string }) => v.name === n)?.to, on.opts.name, JSON.stringify(d));
    const last = checkTicks(n);
    await until(`${n} to tick on ${on.opts.name}`, () => checkTicks(n) > last + 2, 300_000, 500);
    const c = await ConsoleClient.open(on.sock, n);
    c.send('touch /tmp/stop\r');
    await until(`${n}'s workload to finish`, () => /DONE \d+ \d+/.test(logsOf(n)), 300_000, 500);
    c.close();
    const m = /DONE (\d+) (\d+)/.exec(logsOf(n))!;
    const ticks = checkTicks(n);
    assert.equal(Number(m[1]), ticks, `${n}: DONE after the last TICK`);
    assert.equal(Number(m[2]), checksum(ticks), `${n}: the final checksum`);
  }
  assert.equal(((await h1.api('GET', '/v1/vms')).json as unknown[]).length, 0, 'h1 is empty');
  assert.equal((await hosts[1]!.api('POST', '/v1/fleet/hosts/h1/undrain')).status, 200);
  const recs = (await h1.api('GET', '/v1/fleet/vms')).json as { name: string; host: string; ha: boolean }[];
  for (const n of NAMES) assert.equal(recs.find((x) => x.name === n)?.host, d.vms.find((v: { name: string }) => v.name === n).to, JSON.stringify(recs));
  assert.equal(recs.find((x) => x.name === 'w1')?.ha, true);
});

test('etcd restarted under the running guests: every VM keeps running, the HA one unfenced, and every daemon rejoins', { skip, timeout: budget(10 * 60_000) }, async () => {
  const where = new Map<string, MemberDaemon>();
  for (const n of NAMES) where.set(n, await onlyHost(n));
  const before = new Map<string, number>();
  for (const n of NAMES) before.set(n, await instructions(where.get(n)!, n));
  const synced0 = lastSynced(logsOf('w1'));
  await etcd.stopMember(0);
  const down = await hosts[0]!.api('GET', '/v1/fleet/hosts');
  assert.equal(down.status, 503, down.text);
  await etcd.restartMember(0);
  await waitHosts(hosts[1]!, ['h1', 'h2', 'h3'], 120_000);
  for (const h of hosts) await until(`${h.opts.name} to hold its lease`, () => leaseHeld(h), 60_000, 100);
  for (const n of NAMES) {
    assert.equal((await onlyHost(n)).opts.name, where.get(n)!.opts.name, `${n} stayed where it was`);
    await until(`${n} to run on`, async () => (await instructions(where.get(n)!, n)) > before.get(n)! + 1e6, 60_000, 200);
  }
  await until('w1 to fsync on', () => lastSynced(logsOf('w1')) > synced0 + 2, 120_000, 500);
  for (const h of hosts) assert.doesNotMatch(h.stderr, /fencing, stopping/, `${h.opts.name} fenced itself: ${h.stderr.slice(-2000)}`);
  // Placement works again.
  const p = await hosts[2]!.api('POST', '/v1/fleet/vms', { vm: { name: 'after-etcd', memory: 16, kernel: 'idle' } });
  assert.equal(p.status, 201, p.text);
});

test('SIGKILL the host of the HA VM: it boots on another host after the lease expired, its fsynced data intact', { skip, timeout: budget(15 * 60_000) }, async () => {
  const x = await onlyHost('w1');
  // Watch the console live: the last SYNCED line before the kill is the write that must survive.
  const c = await ConsoleClient.open(x.sock, 'w1');
  await until('w1 to fsync while watched', () => lastSynced(c.output) > 0, 120_000, 100);
  await x.stop('SIGKILL');
  const synced = Math.max(lastSynced(c.output), lastSynced(logsOf('w1')));
  c.close();

  let on: MemberDaemon[] = [];
  await until('w1 to run on another host', async () => (on = await runningOn('w1')).length > 0, 300_000, 200);
  assert.equal(on.length, 1);
  assert.notEqual(on[0], x);
  const ev = (await on[0]!.api('GET', '/v1/fleet/events')).json as { kind: string; vm?: string; host: string }[];
  assert.ok(ev.some((e) => e.kind === 'expired' && e.vm === 'w1' && e.host === x.opts.name), JSON.stringify(ev));
  const c2 = await bootToShell(on[0]!, 'w1');
  c2.send('mkdir -p /mnt && mount /dev/vda /mnt && echo "STATE $(cat /mnt/state)"\r');
  await c2.waitFor(/STATE \d+ \d+/, 120_000);
  const m = /STATE (\d+) (\d+)/.exec(c2.output)!;
  const n = Number(m[1]);
  assert.ok(n >= synced, `the disk holds write ${n}, but ${synced} was fsynced before the kill`);
  assert.equal(Number(m[2]), checksum(n), 'the record on the disk is whole');
  // Writing again, for the partition that follows.
  c2.send(FSYNC_LOOP);
  await c2.waitFor(/SYNCED \d+/, 120_000);
  c2.close();

  // The killed host comes back with its stored copy of w1 (stopped): it rejoins and drops it.
  await x.start();
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3'], 120_000);
  await until(`${x.opts.name} to drop its stale copy`, async () => (await x.api('GET', '/v1/vms/w1')).status === 404, 60_000);
  assert.equal((await onlyHost('w1')).opts.name, on[0]!.opts.name);
});

test('partition the host of the HA VM from etcd: it fences the VM before it starts elsewhere, never two at once', { skip, timeout: budget(15 * 60_000) }, async () => {
  const y = await onlyHost('w1');
  const proxy = proxies[hosts.indexOf(y)]!;
  // Every live host's own view of w1, the whole time.
  let both = '';
  let fencedAt = 0;
  let elsewhereAt = 0;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      const on = (await runningOn('w1')).map((h) => h.opts.name);
      const now = Date.now();
      if (on.length > 1) both ||= on.join(',');
      if (!on.includes(y.opts.name) && fencedAt === 0) fencedAt = now;
      if (on.some((h) => h !== y.opts.name) && elsewhereAt === 0) elsewhereAt = now;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await proxy.cut();
    await until('w1 to run on another host', () => elsewhereAt !== 0, 300_000, 100);
    const z = (await runningOn('w1')).find((h) => h !== y)!;
    // A while longer, to see that it stays single: the new copy boots.
    await until('the new copy to run', async () => (await instructions(z, 'w1')) > 5e8, 300_000, 200);
  } finally {
    watching = false;
    await watch;
  }
  assert.equal(both, '', `two hosts ran w1 at once: ${both}`);
  assert.ok(fencedAt > 0 && fencedAt < elsewhereAt, `fenced at ${fencedAt}, elsewhere at ${elsewhereAt}`);
  assert.match(y.stderr, /lost the lease .*fencing, stopping 1 HA VM/);
  assert.equal(await leaseHeld(y), false);
  const z = await onlyHost('w1');

  // The last line of defence: the cut-off host's own copy cannot start while the other holds the disk.
  const again = await y.api('POST', '/v1/vms/w1/start');
  if (again.status === 200) {
    await until('the copy to fail', async () => (await y.api('GET', '/v1/vms/w1')).json.state !== 'running', 30_000, 50);
    assert.match(String((await y.api('GET', '/v1/vms/w1')).json.lastFailure), /attached read-write by another VM or process/);
  } else {
    assert.match(again.json.error, /attached read-write by another VM or process/, again.text);
  }
  assert.equal((await onlyHost('w1')).opts.name, z.opts.name);

  // Healed: it rejoins and drops its copy; w1 stays where it is; the fence is on record.
  await proxy.heal();
  await waitHosts(hosts[0]!, ['h1', 'h2', 'h3'], 120_000);
  await until(`${y.opts.name} to drop its copy`, async () => (await y.api('GET', '/v1/vms/w1')).status === 404, 60_000);
  assert.equal((await onlyHost('w1')).opts.name, z.opts.name);
  const ev = (await hosts[0]!.api('GET', '/v1/fleet/events')).json as { kind: string; vm?: string; host: string }[];
  assert.ok(ev.some((e) => e.kind === 'fenced' && e.vm === 'w1' && e.host === y.opts.name), JSON.stringify(ev));
});
