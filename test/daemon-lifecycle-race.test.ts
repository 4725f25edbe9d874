// Lifecycle operations on one VM are serialized: a property test fires random
// batches of concurrent create/start/stop/kill/restart/delete requests at a
// real daemon, on a few names, and after each batch checks
//  - every answer is one some serial order of that batch would give (for each
//    name, some order of its operations replays through a model to exactly
//    the answers seen and the state the API then shows);
//  - nothing runs that the API does not list: the runners alive, the VM child
//    processes, and the host ports of their forwards match the running VMs;
//  - the API's list, the state directory and the memory budget agree.
// The guests idle (wfi), half of them in their own process, each with a host
// port forward, so a leaked VM shows up as a thread, a process or a port.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { liveRunnerCount } from '../src/host/vm-supervisor.js';
import { budget } from './lib/budget.js';
import { freePort } from './lib/free-port.js';

const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];
type OpKind = 'create' | 'start' | 'stop' | 'kill' | 'restart' | 'delete' | 'deleteForce';
interface Op {
  kind: OpKind;
  name: Name;
  isolation: 'thread' | 'process';
}
interface VmModel {
  exists: boolean;
  running: boolean;
}

const MEM = 16;
let d: TestDaemon;
const ports = new Map<Name, number>();

/** Is something listening on this port of 127.0.0.1? */
function portBound(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(true));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
  });
}

/** Live (not zombie) child processes of this process: the VM processes. */
function childProcesses(): number {
  let n = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && fields[0] !== 'Z') n++;
    } catch {
      // the process ended while we looked
    }
  }
  return n;
}

async function send(op: Op): Promise<number> {
  const path = `/v1/vms/${op.name}`;
  switch (op.kind) {
    case 'create':
      return (
        await api(d, 'POST', '/v1/vms', {
          name: op.name,
          memory: MEM,
          kernel: 'idle',
          isolation: op.isolation,
          nics: [{ mode: 'user', hostfwd: [`tcp:127.0.0.1:${ports.get(op.name)}-:80`] }],
        })
      ).status;
    case 'delete':
      return (await api(d, 'DELETE', path)).status;
    case 'deleteForce':
      return (await api(d, 'DELETE', `${path}?force=true`)).status;
    default:
      return (await api(d, 'POST', `${path}/${op.kind}`)).status;
  }
}

/** The answer a serial daemon gives to `op` in state `m`, and the state after it. */
function step(m: VmModel, kind: OpKind): [number, VmModel] {
  if (kind === 'create') return m.exists ? [409, m] : [201, { exists: true, running: false }];
  if (!m.exists) return [404, m];
  switch (kind) {
    case 'start':
      return m.running ? [409, m] : [200, { exists: true, running: true }];
    case 'stop':
    case 'kill':
      return m.running ? [200, { exists: true, running: false }] : [409, m];
    case 'restart':
      return m.running ? [200, m] : [409, m];
    case 'delete':
      return m.running ? [409, m] : [204, { exists: false, running: false }];
    default:
      return [204, { exists: false, running: false }];
  }
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** Is there an order of these operations that answers `got` and ends in `end`? */
function linearizable(start: VmModel, ops: { kind: OpKind; status: number }[], end: VmModel): boolean {
  // A kill does not queue behind a graceful stop that waits for its guest: it ends
  // the VM during that stop, and both succeed. Such a kill is part of the stop.
  const stop = ops.findIndex((o) => o.kind === 'stop' && o.status === 200);
  const kill = ops.findIndex((o) => o.kind === 'kill' && o.status === 200);
  if (stop >= 0 && kill >= 0 && linearizableInOrder(start, ops.filter((_, i) => i !== kill), end)) return true;
  return linearizableInOrder(start, ops, end);
}

function linearizableInOrder(start: VmModel, ops: { kind: OpKind; status: number }[], end: VmModel): boolean {
  return permutations(ops).some((order) => {
    let m = start;
    for (const o of order) {
      const [status, next] = step(m, o.kind);
      if (status !== o.status) return false;
      m = next;
    }
    return m.exists === end.exists && m.running === end.running;
  });
}

async function observe(): Promise<Map<Name, VmModel>> {
  const list = (await api(d, 'GET', '/v1/vms')).json as { name: Name; state: string }[];
  const out = new Map<Name, VmModel>();
  for (const n of NAMES) {
    const v = list.find((x) => x.name === n);
    out.set(n, { exists: v !== undefined, running: v?.state === 'running' });
  }
  return out;
}

async function checkInvariants(): Promise<void> {
  const list = (await api(d, 'GET', '/v1/vms')).json as { name: string; state: string; isolation: string }[];
  const listed = list.map((v) => v.name).sort();
  const stored = readdirSync(join(d.dir, 'state', 'vms'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
  assert.deepEqual(stored, listed, 'the state directory holds exactly the listed VMs');
  assert.deepEqual([...d.host.vms.keys()].sort(), listed);
  const stats = (await api(d, 'GET', '/v1/host/stats')).json;
  assert.equal(stats.memoryReservedMiB, MEM * listed.length, 'the memory budget matches the listed VMs');
  for (const v of list) assert.ok(v.state === 'running' || v.state === 'stopped' || v.state === 'created', `${v.name} is ${v.state}`);
  const running = list.filter((v) => v.state === 'running');
  const runningProcs = running.filter((v) => v.isolation === 'process').length;
  // A VM process that was just killed may take a moment to be reaped; a leaked one never goes.
  await until(
    `VM processes (${childProcesses()}) to match the running process VMs (${runningProcs})`,
    () => childProcesses() === runningProcs,
    15_000,
  );
  assert.equal(liveRunnerCount(), running.length, 'runners alive match the running VMs');
  for (const n of NAMES) {
    const isRunning = running.some((v) => v.name === n);
    assert.equal(await portBound(ports.get(n)!), isRunning, `host port of ${n} bound iff ${n} runs`);
  }
}

before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: 1024 });
  for (const n of NAMES) ports.set(n, await freePort());
});
after(async () => {
  await d?.cleanup();
});

const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom<OpKind>('create', 'create', 'start', 'start', 'stop', 'kill', 'restart', 'delete', 'deleteForce'),
  name: fc.constantFrom<Name>(...NAMES),
  isolation: fc.constantFrom<'thread' | 'process'>('thread', 'process'),
});

test('concurrent lifecycle operations end in a state some serial order explains, with nothing leaked', { timeout: budget(600_000) }, async () => {
  let batches = 0;
  const seen = new Set<string>();
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom<'thread' | 'process'>('thread', 'process'), { minLength: 3, maxLength: 3 }), fc.array(fc.array(opArb, { minLength: 2, maxLength: 6 }), { minLength: 1, maxLength: 5 }), async (isolations, plan) => {
      try {
        // Start from all three defined, so most operations meet a VM.
        for (const [i, n] of NAMES.entries()) assert.equal(await send({ kind: 'create', name: n, isolation: isolations[i] }), 201);
        for (const batch of plan) {
          batches++;
          const before = await observe();
          const statuses = await Promise.all(batch.map((op) => send(op)));
          batch.forEach((op, i) => seen.add(`${op.kind} ${statuses[i]}`));
          for (const [i, s] of statuses.entries()) assert.ok(s < 500, `${batch[i].kind} ${batch[i].name}: HTTP ${s}`);
          const afterState = await observe();
          for (const n of NAMES) {
            const mine = batch.flatMap((op, i) => (op.name === n ? [{ kind: op.kind, status: statuses[i] }] : []));
            assert.ok(
              linearizable(before.get(n)!, mine, afterState.get(n)!),
              `${n}: from ${JSON.stringify(before.get(n))}, answers ${JSON.stringify(mine)} and final ${JSON.stringify(afterState.get(n))} fit no serial order`,
            );
          }
          await checkInvariants();
        }
      } finally {
        for (const n of NAMES) await api(d, 'DELETE', `/v1/vms/${n}?force=true`);
      }
      await checkInvariants();
    }),
    { numRuns: 25, endOnFailure: true, includeErrorInReport: true },
  );
  assert.ok(batches >= 25);
  // The runs did reach the interesting cases, not only 404s.
  for (const k of ['create 201', 'start 200', 'kill 200', 'deleteForce 204']) assert.ok(seen.has(k), `never saw ${k}: ${[...seen].join(', ')}`);
  console.log(`lifecycle race: ${batches} batches; answers seen: ${[...seen].sort().join(', ')}`);
});
