// SMP VMs in the daemon: per-hart statistics (the stats route's harts[],
// Prometheus counters with a hart label), fair shares and caps that apply to
// a VM's harts together, caps in host cores up to the hart count, and a
// multi-hart VM busy on every hart beside another VM whose console keeps
// answering. The first tests use a tiny kernel that spins on every hart (no
// boot); the last ones boot the real Debian kernel with 2 and 4 harts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

interface Hart {
  hart: number;
  state: string;
  waiting: boolean;
  instructions: number;
  interrupts: number;
  wfis: number;
  ipis: number;
  switchedIn: number;
}
const HART_KEYS = ['hart', 'state', 'waiting', 'instructions', 'interrupts', 'wfis', 'ipis', 'switchedIn'];

async function harts(d: TestDaemon, name: string): Promise<{ instructions: number; harts: Hart[] }> {
  const r = await api(d, 'GET', `/v1/vms/${name}/stats`);
  assert.equal(r.status, 200, r.text);
  for (const h of r.json.harts) assert.deepEqual(Object.keys(h).sort(), [...HART_KEYS].sort(), 'every entry has the same fields');
  return r.json;
}

async function createAndStart(d: TestDaemon, body: Record<string, unknown>): Promise<void> {
  const r = await api(d, 'POST', '/v1/vms', body);
  assert.equal(r.status, 201, r.text);
  const s = await api(d, 'POST', `/v1/vms/${String(body.name)}/start`);
  assert.equal(s.status, 200, s.text);
}

describe('spinning harts (no boot)', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ cpus: 1 });
  });
  after(async () => {
    await d?.cleanup();
  });

  test('per-hart figures: one entry per hart in every state, each hart counts its own instructions; /metrics has them by hart', { timeout: budget(120_000) }, async () => {
    // Phase 1 (the harts take turns on the VM's thread): the switches are counted.
    assert.equal((await api(d, 'POST', '/v1/vms', { name: 'quad', memory: 16, kernel: 'smpspin', cpus: 4, jit: false, hartThreads: false })).status, 201);
    const before = await harts(d, 'quad');
    assert.deepEqual(before.harts.map((h) => [h.hart, h.state, h.instructions]), [[0, 'stopped', 0], [1, 'stopped', 0], [2, 'stopped', 0], [3, 'stopped', 0]], 'a VM not running: every hart stopped, counters 0');
    assert.equal((await api(d, 'POST', '/v1/vms/quad/start')).status, 200);
    await until('all four harts started and running', async () => (await harts(d, 'quad')).harts.every((h) => h.state === 'started' && h.instructions > 0), 30_000, 100);
    const a = await harts(d, 'quad');
    await until('every hart ran on', async () => (await harts(d, 'quad')).harts.every((h, i) => h.instructions > a.harts[i].instructions + 1_000_000), 60_000, 200);
    const b = await harts(d, 'quad');
    for (const h of b.harts) {
      assert.equal(h.waiting, false, `hart ${h.hart} spins, it does not wait`);
      assert.ok(h.switchedIn >= 1, `hart ${h.hart} took turns (${h.switchedIn})`);
    }
    // Hart figures are published every ~200 ms, the VM total after every slice.
    const sum = b.harts.reduce((s, h) => s + h.instructions, 0);
    assert.ok(sum <= b.instructions && sum > 0.5 * b.instructions, `harts ${sum} vs VM ${b.instructions}`);

    const metrics = (await api(d, 'GET', '/metrics')).text;
    assert.match(metrics, /# TYPE tsvisor_vm_hart_instructions_total counter/);
    for (let h = 0; h < 4; h++) assert.match(metrics, new RegExp(`tsvisor_vm_hart_instructions_total\\{vm="quad",hart="${h}"\\} [1-9]`));
    assert.match(metrics, /tsvisor_vm_hart_state\{vm="quad",hart="3",state="started"\} 1/);
    assert.match(metrics, /# TYPE tsvisor_vm_hart_interrupts_total counter/);
    assert.match(metrics, /tsvisor_vm_hart_waiting\{vm="quad",hart="0"\} 0/);
    const doc = (await api(d, 'GET', '/v1/openapi.json')).json;
    assert.deepEqual(doc.components.schemas.VmStats.properties.harts.items.properties.state.enum, ['started', 'stopped', 'suspended']);
  });

  test('weight and cap hold for a VM\'s harts together: a 4-hart VM and a 1-hart VM of equal weight get equal shares', { timeout: budget(180_000) }, async () => {
    // quad (4 harts spinning) runs since the last test.
    await createAndStart(d, { name: 'solo', memory: 16, kernel: 'spin', jit: false });
    await delay(3000); // speed estimates settle
    const sample = () => ['quad', 'solo'].map((n) => Number(d.host.vms.get(n)!.live()!.instret));
    const a = sample();
    await delay(8000);
    const b = sample();
    const ratio = (b[0] - a[0]) / (b[1] - a[1]);
    assert.ok(ratio > 0.85 && ratio < 1.15, `quad:solo instructions ${b[0] - a[0]}:${b[1] - a[1]} = ${ratio.toFixed(3)}, not about 1:1`);

    // A cap of a quarter core for all four harts together.
    assert.equal((await api(d, 'PATCH', '/v1/vms/quad', { cpu: { cap: 0.25 } })).status, 200);
    await delay(2000);
    const busy = () => d.host.vms.get('quad')!.live()!.busyUs;
    const t0 = performance.now();
    const u0 = busy();
    await delay(6000);
    await until('cap overrun paid back', () => d.host.scheduler.capDebtUs('quad') === 0, 10_000, 5);
    const share = (busy() - u0) / ((performance.now() - t0) * 1000);
    assert.ok(share <= 0.25 * 1.05, `the 4-hart VM used ${share.toFixed(3)} of a core with a cap of 0.25`);
    const h = await harts(d, 'quad');
    assert.ok(h.harts.every((x) => x.instructions > 0), 'every hart still runs under the cap');
    await api(d, 'POST', '/v1/vms/solo/kill');
    await api(d, 'POST', '/v1/vms/quad/kill');
  });
});

/** CPU time of process `pid` so far, all its threads (clock ticks, usually 100 a second). */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime, stime
}
const TICKS_PER_S = 100;

describe('harts on host threads of their own: weights and caps hold for the harts together', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ cpus: 1 });
  });
  after(async () => {
    await d?.cleanup();
  });

  /** Instructions pair and solo retire over 8 s. */
  async function shares(): Promise<number> {
    const sample = () => ['pair', 'solo'].map((n) => Number(d.host.vms.get(n)!.live()!.instret));
    const a = sample();
    await delay(8000);
    const b = sample();
    return (b[0] - a[0]) / (b[1] - a[1]);
  }

  test('a 2-hart VM on hart threads and a 1-hart VM retire instructions in the ratio of their weights on a one-core daemon', { timeout: budget(180_000) }, async (t) => {
    await createAndStart(d, { name: 'pair', memory: 16, kernel: 'smpspin', cpus: 2, jit: false, hartThreads: true });
    await createAndStart(d, { name: 'solo', memory: 16, kernel: 'spin', jit: false });
    await until('both harts of pair run', async () => (await harts(d, 'pair')).harts.every((h) => h.state === 'started' && h.instructions > 1_000_000), 60_000, 200);
    await delay(3000); // speed estimates settle
    const equal = await shares();
    t.diagnostic(`equal weights: pair:solo instructions ${equal.toFixed(3)}`);
    assert.ok(equal > 0.85 && equal < 1.15, `pair:solo instructions ${equal.toFixed(3)} with equal weights, not about 1:1`);
    assert.equal((await api(d, 'PATCH', '/v1/vms/solo', { cpu: { weight: 2048 } })).status, 200);
    await delay(2000);
    const half = await shares();
    t.diagnostic(`solo weighs twice pair: pair:solo instructions ${half.toFixed(3)}`);
    assert.ok(half > 0.425 && half < 0.575, `pair:solo instructions ${half.toFixed(3)} with solo weighing twice pair, not about 1:2`);
    const h = await harts(d, 'pair');
    assert.ok(h.harts.every((x) => x.switchedIn === 0 && x.instructions > 0), `both harts run, on threads of their own (no turns): ${JSON.stringify(h.harts)}`);
    await api(d, 'POST', '/v1/vms/solo/kill');
  });

  test('a cap of a quarter core holds for a 2-hart VM on hart threads: its harts stop together at its credit, every hart still runs', { timeout: budget(180_000) }, async (t) => {
    // pair (2 harts spinning on threads) runs since the last test, alone now.
    const vm = d.host.vms.get('pair')!;
    // The highest credit the scheduler has given the VM so far (-1: none; the VM is alone on its core).
    let granted = -1n;
    const setCredit = vm.setCredit.bind(vm);
    vm.setCredit = (credit: bigint) => {
      if (credit < 0n || credit > granted) granted = credit;
      setCredit(credit);
    };
    const cap = 0.25;
    assert.equal((await api(d, 'PATCH', '/v1/vms/pair', { cpu: { cap } })).status, 200);
    await delay(2000);
    const h0 = await harts(d, 'pair');
    const t0 = performance.now();
    const u0 = vm.live()!.busyUs;
    // The harts stop at the credit together: each runs at most one slice (100,000
    // instructions) past what it saw of the others' counts. Before, they ran on until
    // the device thread next looked (up to 50 ms: millions of instructions).
    const slack = 2 * 2 * 100_000;
    let over = 0;
    while (performance.now() - t0 < 6000) {
      const live = vm.live()!;
      if (granted >= 0n) over = Math.max(over, Number(live.instret - granted));
      await delay(2);
    }
    t.diagnostic(`the harts ran at most ${over} instructions past the highest credit given`);
    assert.ok(over <= slack, `the harts ran ${over} instructions past their credit`);
    // And so the overrun of the last grant is paid back (the debt never came back to 0 before).
    await until('cap overrun paid back', () => d.host.scheduler.capDebtUs('pair') === 0, 10_000, 5);
    const seconds = (performance.now() - t0) / 1000;
    const busy = (vm.live()!.busyUs - u0) / 1e6 / seconds;
    t.diagnostic(`cap ${cap}: harts busy ${busy.toFixed(3)} cores over ${seconds.toFixed(1)} s`);
    assert.ok(busy <= cap * 1.05, `the harts ran ${busy.toFixed(3)} of a core with a cap of ${cap}`);
    const h1 = await harts(d, 'pair');
    assert.ok(h1.harts.every((x, i) => x.instructions > h0.harts[i].instructions), `every hart still runs under the cap: ${JSON.stringify(h1.harts)}`);
    await api(d, 'POST', '/v1/vms/pair/kill');
  });

  test('a cap of half a core for a 2-hart VM on hart threads in its own process: the process uses at most that CPU time', { timeout: budget(180_000) }, async (t) => {
    const cap = 0.5;
    await createAndStart(d, { name: 'proc', memory: 16, kernel: 'smpspin', cpus: 2, jit: false, hartThreads: true, isolation: 'process', cpu: { cap } });
    await until('both harts of proc run', async () => (await harts(d, 'proc')).harts.every((h) => h.state === 'started' && h.instructions > 1_000_000), 60_000, 200);
    await delay(2000);
    const vm = d.host.vms.get('proc')!;
    const pid = vm.pid!;
    assert.ok(pid > 0, 'the VM has a process of its own');
    const h0 = await harts(d, 'proc');
    const t0 = performance.now();
    const c0 = processTicks(pid);
    await delay(8000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (processTicks(pid) - c0) / TICKS_PER_S / seconds;
    t.diagnostic(`cap ${cap}: the VM's process used ${cpu.toFixed(3)} cores over ${seconds.toFixed(1)} s`);
    // The whole process: both hart threads, the device thread, V8's own threads.
    assert.ok(cpu <= cap * 1.2, `the VM's process used ${cpu.toFixed(3)} cores with a cap of ${cap}`);
    const h1 = await harts(d, 'proc');
    assert.ok(h1.harts.every((x, i) => x.instructions > h0.harts[i].instructions), `every hart still runs under the cap: ${JSON.stringify(h1.harts)}`);
    await api(d, 'POST', '/v1/vms/proc/kill');
  });
});

test('a cap is in host cores: up to the hart count (and --cpus); above either is refused with a clear error', { timeout: budget(60_000) }, async () => {
  const d = await startTestDaemon({ cpus: 4 });
  try {
    const ok = await api(d, 'POST', '/v1/vms', { name: 'quad', memory: 16, kernel: 'smpspin', cpus: 4, cpu: { cap: 3 } });
    assert.equal(ok.status, 201, ok.text);
    const tooMany = await api(d, 'POST', '/v1/vms', { name: 'solo', memory: 16, kernel: 'spin', cpu: { cap: 2 } });
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json.error, "cpu.cap: 2 cores is more than the VM's 1 hart can use (at most one core per hart)");
    const pair = await api(d, 'POST', '/v1/vms', { name: 'pair', memory: 16, kernel: 'smpspin', vcpus: 2, cpu: { cap: 2.5 } });
    assert.equal(pair.status, 400);
    assert.match(pair.json.error, /2\.5 cores is more than the VM's 2 harts/);
    const patchBad = await api(d, 'PATCH', '/v1/vms/quad', { cpu: { cap: 4.5 } });
    assert.equal(patchBad.status, 400);
    assert.match(patchBad.json.error, /4 harts/);
    const patchOk = await api(d, 'PATCH', '/v1/vms/quad', { cpu: { cap: 4 } });
    assert.equal(patchOk.status, 200, patchOk.text);
    assert.equal(patchOk.json.config.cpu.cap, 4);
    const host = await api(d, 'POST', '/v1/vms', { name: 'eight', memory: 16, kernel: 'smpspin', cpus: 8, cpu: { cap: 6 } });
    assert.equal(host.status, 400);
    assert.equal(host.json.error, "cpu.cap: must be at most 4 (the daemon's --cpus)");
  } finally {
    await d.cleanup();
  }
});

describe('Debian guests with several harts', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ cpus: 1, withGuest: true });
  });
  after(async () => {
    await d?.cleanup();
  });

  /** Type a shell command and wait for its answer. */
  async function ask(con: ConsoleClient, command: string, answer: RegExp, ms = 120_000): Promise<void> {
    const mark = con.output.length;
    con.send(`${command}\n`);
    await con.waitFor(answer, ms, mark);
  }

  test('a 2-hart guest: a busy loop pinned to cpu1 shows in hart 1\'s figures; a 4-hart guest busy on every hart leaves the other VM\'s console answering', { timeout: budget(1_200_000) }, async () => {
    const guest = { memory: 192, kernel: 'vmlinux', initrd: 'initrd' };
    await createAndStart(d, { name: 'pair', cpus: 2, ...guest });
    await createAndStart(d, { name: 'quad', cpus: 4, ...guest });
    const pair = await ConsoleClient.open(d.socketPath, 'pair');
    const quad = await ConsoleClient.open(d.socketPath, 'quad');
    for (const con of [pair, quad]) {
      await con.waitFor(READY_LINE, 600_000);
      await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
    }
    // Both harts are up at the prompt.
    const up = await harts(d, 'pair');
    assert.deepEqual(up.harts.map((h) => [h.hart, h.state]), [[0, 'started'], [1, 'started']]);
    assert.ok(up.harts.every((h) => h.interrupts > 0 && h.wfis > 0), `both harts took interrupts and idled: ${JSON.stringify(up.harts)}`);

    await ask(pair, 'taskset -c 1 sh -c "while :; do :; done" & echo pinned-$!', /pinned-\d+/);
    await delay(1000);
    const a = await harts(d, 'pair');
    await until('hart 1 runs the loop', async () => (await harts(d, 'pair')).harts[1].instructions > a.harts[1].instructions + 50_000_000, 300_000, 500);
    const b = await harts(d, 'pair');
    const grew = b.harts.map((h, i) => h.instructions - a.harts[i].instructions);
    assert.ok(grew[1] > 4 * grew[0], `hart 1 (busy) grew ${grew[1]}, hart 0 (idle shell) ${grew[0]}`);
    assert.equal(b.harts[1].waiting, false, 'the busy hart does not wait');
    const metrics = (await api(d, 'GET', '/metrics')).text;
    const m1 = /tsvisor_vm_hart_instructions_total\{vm="pair",hart="1"\} (\d+)/.exec(metrics);
    assert.ok(m1 && Number(m1[1]) >= b.harts[1].instructions, 'the metrics counter for hart 1 is there and current');
    await ask(pair, 'kill %1; echo killed', /killed/);

    // Every hart of the 4-hart VM busy; the 2-hart VM's console still answers.
    await ask(quad, 'for c in 0 1 2 3; do taskset -c $c sh -c "while :; do :; done" & done; echo loops', /loops/);
    const q0 = await harts(d, 'quad');
    await until('all four harts of quad busy', async () => (await harts(d, 'quad')).harts.every((h, i) => h.instructions > q0.harts[i].instructions + 20_000_000), 300_000, 500);
    for (let i = 0; i < 3; i++) await ask(pair, `echo rt-$((${i} + 40))`, new RegExp(`\\r?\\nrt-${i + 40}\\r?\\n`));
    const q1 = await harts(d, 'quad');
    assert.ok(q1.harts.every((h) => h.state === 'started' && !h.waiting), `quad's harts all busy: ${JSON.stringify(q1.harts)}`);
    pair.close();
    quad.close();
  });
});
