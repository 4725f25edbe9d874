// The fleet at scale, simulated: N hosts (default 1000) that only register
// under a lease and heartbeat, against one real etcd on loopback. Measures
// placement latency (p50/p99, sequential and concurrent) and etcd operations
// per placement through the daemon's own code (FleetStore.place), the
// heartbeat load (keep-alives per second, their round trip, etcd's CPU), and
// how long a dead host takes to be noticed by a member polling as a daemon does.
//
//   npm run bench:fleet -- [--hosts N] [--lease S] [--placements N] [--json]

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import type { Lease } from 'etcd3';
import { EtcdCluster, etcdBinary } from '../test/lib/etcd.js';
import { FleetStore } from '../src/host/fleet-store.js';
import type { HostRecord } from '../src/host/fleet-records.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    lease: { type: 'string', default: '10' },
    placements: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const HOSTS = Number(values.hosts);
const LEASE = Number(values.lease);
const PLACEMENTS = Number(values.placements);
const CONC = Number(values.concurrency);
if (![HOSTS, LEASE, PLACEMENTS, CONC].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('bench:fleet: --hosts, --lease, --placements and --concurrency are positive whole numbers\n');
  process.exit(2);
}
if (etcdBinary() === null) {
  process.stderr.write('bench:fleet: etcd is not installed (Debian: etcd-server)\n');
  process.exit(2);
}
const log = (m: string) => process.stderr.write(`${m}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/** CPU seconds the process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const after = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(after[11]) + Number(after[12])) / 100; // utime, stime in clock ticks (100 Hz on Linux)
}

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-sim-'));
const etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
const etcdPid = etcd.members[0]!.child!.pid!;
// Simulated hosts share a few clients (gRPC channels), as a handful of real daemons would not: one channel per 100 hosts.
const clients = Array.from({ length: Math.ceil(HOSTS / 100) }, () => new FleetStore({ endpoints: etcd.endpoints, callTimeoutMs: 30_000 }));
const sims: { rec: HostRecord; lease: Lease; id: string; store: FleetStore; alive: boolean }[] = [];

// Keep-alives go over one LeaseKeepAlive stream per client, as an etcd client multiplexes its leases
// (a keepaliveOnce per beat would open a stream each time and measure the simulator, not etcd).
const streams = new Map<FleetStore, { write: (id: string) => void; waiting: Map<string, ((ttl: number) => void)[]> }>();
async function streamOf(store: FleetStore) {
  let st = streams.get(store);
  if (st) return st;
  const duplex = await store.client.leaseClient.leaseKeepAlive();
  // Answers come in order per lease: the first waiter of that lease gets the first answer.
  const waiting = new Map<string, ((ttl: number) => void)[]>();
  duplex.on('data', (r) => {
    const q = waiting.get(String(r.ID));
    q?.shift()?.(Number(r.TTL));
    if (q?.length === 0) waiting.delete(String(r.ID));
  });
  duplex.on('error', () => {
    for (const q of waiting.values()) for (const done of q) done(-1);
    waiting.clear();
  });
  st = { write: (id) => duplex.write({ ID: id }), waiting };
  streams.set(store, st);
  return st;
}
/** One keep-alive: the lease's remaining TTL (0 or less: expired; -1: the stream failed). */
async function beat(s: { id: string; store: FleetStore }): Promise<number> {
  const st = await streamOf(s.store);
  return new Promise((resolve) => {
    const q = st.waiting.get(s.id) ?? [];
    q.push(resolve);
    st.waiting.set(s.id, q);
    st.write(s.id);
  });
}

try {
  log(`bench:fleet: registering ${HOSTS} hosts (lease ${LEASE} s)`);
  const t0 = performance.now();
  for (let i = 0; i < HOSTS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, HOSTS - i) }, async (_, j) => {
        const n = i + j;
        const store = clients[n % clients.length]!;
        const lease = store.client.lease(LEASE, { autoKeepAlive: false });
        lease.on('lost', () => {});
        const id = await lease.grant();
        const rec: HostRecord = {
          name: `sim${String(n).padStart(5, '0')}`, url: `http://10.0.${n >> 8}.${n & 255}:8080`, cores: 8, memoryBudgetMiB: 65536, reservedMiB: 0,
          freeMemoryMiB: 60000, images: ['vmlinux', 'initrd'], labels: { zone: `z${n % 3}` }, vms: 0, startedAt: new Date().toISOString(), leaseSeconds: LEASE,
        };
        await store.putHost(rec, id);
        sims.push({ rec, lease, id, store, alive: true });
      }),
    );
  }
  const registerS = (performance.now() - t0) / 1000;

  // Heartbeats: every host sends a keep-alive every lease/4 s (as the daemon does), spread evenly.
  const rtts: number[] = [];
  let beats = 0;
  let expired = 0;
  let stopBeats = false;
  const periodMs = (LEASE * 1000) / 4;
  const beating = sims.map(async (s, i) => {
    await delay((i / sims.length) * periodMs);
    while (!stopBeats && s.alive) {
      const t = performance.now();
      try {
        if ((await beat(s)) <= 0) throw new Error('expired');
        rtts.push(performance.now() - t);
        beats++;
      } catch {
        // A lease this process could not renew in time: the host would count as dead.
        s.alive = false;
        expired++;
      }
      await delay(Math.max(0, periodMs - (performance.now() - t)));
    }
  });
  await delay(periodMs); // every host has started beating
  log('bench:fleet: measuring the heartbeat load');
  const cpu0 = cpuSeconds(etcdPid);
  const beats0 = beats;
  rtts.length = 0;
  const w0 = performance.now();
  await delay(Math.max(10_000, 2 * periodMs));
  const windowS = (performance.now() - w0) / 1000;
  const heartbeat = {
    keepalivesPerS: (beats - beats0) / windowS,
    rttP50Ms: pct(rtts, 50),
    rttP99Ms: pct(rtts, 99),
    etcdCpuCores: (cpuSeconds(etcdPid) - cpu0) / windowS,
  };
  log(`bench:fleet: heartbeats ${JSON.stringify(heartbeat)}`);

  // Placement through the daemon's own transaction, heartbeats going on.
  log(`bench:fleet: ${PLACEMENTS} placements sequentially, then ${PLACEMENTS} with ${CONC} at a time`);
  const placer = new FleetStore({ endpoints: etcd.endpoints, callTimeoutMs: 30_000 });
  const place = async (name: string) => {
    const t = performance.now();
    await placer.place({ name, memory: 512, ha: false, definition: { name, memory: 512, kernel: 'vmlinux' } }, { memory: 512, policy: 'spread', images: ['vmlinux'] });
    return performance.now() - t;
  };
  const seq: number[] = [];
  const ops0 = placer.ops;
  for (let i = 0; i < PLACEMENTS; i++) seq.push(await place(`seq${i}`));
  const seqOps = (placer.ops - ops0) / PLACEMENTS;
  const conc: number[] = [];
  const ops1 = placer.ops;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      while (next < PLACEMENTS) conc.push(await place(`conc${next++}`));
    }),
  );
  const concOps = (placer.ops - ops1) / PLACEMENTS;
  log(`bench:fleet: placement sequential p50 ${pct(seq, 50).toFixed(1)} p99 ${pct(seq, 99).toFixed(1)} ms (${seqOps} ops), concurrent p50 ${pct(conc, 50).toFixed(1)} p99 ${pct(conc, 99).toFixed(1)} ms (${concOps} ops)`);

  // Dead hosts: five stop beating; a member polls the live host names every lease/4 s, as FleetMember does.
  log('bench:fleet: stopping 5 hosts and timing their detection');
  const victims: typeof sims = [];
  const lastBeat = new Map<string, number>();
  for (const v of sims) {
    if (victims.length === 5) break;
    if (!v.alive) continue;
    v.alive = false;
    if ((await beat(v)) <= 0) continue;
    lastBeat.set(v.rec.name, performance.now());
    victims.push(v);
  }
  const detected = new Map<string, number>();
  const watcher = new FleetStore({ endpoints: etcd.endpoints, callTimeoutMs: 30_000 });
  while (detected.size < victims.length) {
    const t = performance.now();
    const names = await watcher.hostNames();
    for (const v of victims) if (!names.has(v.rec.name) && !detected.has(v.rec.name)) detected.set(v.rec.name, performance.now() - lastBeat.get(v.rec.name)!);
    await delay(Math.max(0, (LEASE * 1000) / 4 - (performance.now() - t)));
  }
  const detectS = [...detected.values()].map((ms) => ms / 1000);
  stopBeats = true;
  await Promise.all(beating);
  placer.close();
  watcher.close();

  const r = {
    hosts: HOSTS, leaseSeconds: LEASE, registerSeconds: registerS,
    heartbeat,
    placement: {
      sequential: { p50Ms: pct(seq, 50), p99Ms: pct(seq, 99), etcdOpsPerPlacement: seqOps },
      concurrent: { concurrency: CONC, p50Ms: pct(conc, 50), p99Ms: pct(conc, 99), etcdOpsPerPlacement: concOps },
    },
    deadHostDetection: { minS: Math.min(...detectS), maxS: Math.max(...detectS) },
    leasesLostToStarvation: expired,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    process.stdout.write(
      `fleet simulation: ${HOSTS} hosts, lease ${LEASE} s, one etcd member on loopback\n` +
        `register:   ${registerS.toFixed(1)} s for all hosts\n` +
        `heartbeats: ${heartbeat.keepalivesPerS.toFixed(0)} keep-alives/s, round trip p50 ${heartbeat.rttP50Ms.toFixed(1)} ms p99 ${heartbeat.rttP99Ms.toFixed(1)} ms, etcd CPU ${heartbeat.etcdCpuCores.toFixed(2)} cores\n` +
        `placement:  sequential p50 ${r.placement.sequential.p50Ms.toFixed(1)} ms p99 ${r.placement.sequential.p99Ms.toFixed(1)} ms, ${seqOps.toFixed(2)} etcd ops each\n` +
        `            ${CONC} at a time p50 ${r.placement.concurrent.p50Ms.toFixed(1)} ms p99 ${r.placement.concurrent.p99Ms.toFixed(1)} ms, ${concOps.toFixed(2)} etcd ops each (retries included)\n` +
        `dead host:  noticed ${r.deadHostDetection.minS.toFixed(1)}..${r.deadHostDetection.maxS.toFixed(1)} s after its last heartbeat (HA restarts wait another lease time)\n` +
        `lost:       ${expired} simulated hosts' leases expired because this one process did not renew them in time\n`,
    );
  }
} finally {
  for (const c of clients) c.close();
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}
