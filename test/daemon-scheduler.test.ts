// The fair-share scheduler alone, on simulated VMs: water filling of shares,
// weights, caps, idle VMs leaving their share, and a host that gives the VMs
// less CPU than the scheduler assumes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairShareScheduler, weightedShares, type Schedulable } from '../src/host/scheduler.js';
import { RUN_STATE_IDLE, RUN_STATE_RUNNING, RUN_STATE_THROTTLED, type LiveCounters } from '../src/vm/protocol.js';
import { rebaseCredit } from '../src/host/vm-process-protocol.js';

test('weightedShares: proportional, capped, redistributed', () => {
  assert.deepEqual(weightedShares(1, [{ weight: 1, ceiling: 1 }, { weight: 3, ceiling: 1 }]), [0.25, 0.75]);
  // The capped entry's surplus goes to the others.
  const s = weightedShares(1, [{ weight: 8, ceiling: 0.2 }, { weight: 1, ceiling: 1 }, { weight: 1, ceiling: 1 }]);
  assert.deepEqual(s.map((x) => +x.toFixed(6)), [0.2, 0.4, 0.4]);
  // No entry gets more than one core, even with cores to spare.
  assert.deepEqual(weightedShares(4, [{ weight: 1, ceiling: 1 }, { weight: 100, ceiling: 1 }]), [1, 1]);
});

/** A VM that runs `speed` instructions per µs of host time while it has credit. */
class SimVm implements Schedulable {
  instret = 0n;
  busyUs = 0;
  credit = -1n;
  idle = false;
  window = { mips: 0, cpuShare: 0, instructionShare: 0 };
  constructor(readonly name: string, readonly weight: number, readonly cap: number | undefined, readonly speed = 100) {}
  live(): LiveCounters {
    const state = this.idle ? RUN_STATE_IDLE : this.credit >= 0n && this.instret >= this.credit ? RUN_STATE_THROTTLED : RUN_STATE_RUNNING;
    return { instret: this.instret, jitInstret: 0n, credit: this.credit, heartbeatMs: Date.now(), busyUs: this.busyUs, state, ramResidentBytes: -1, boots: 0, consoleBytes: 0 };
  }
  setCredit(c: bigint): void {
    this.credit = c;
  }
  /** Busy time is wall time: with more threads than cores it overstates CPU time by this factor. */
  inflate = 1;
  /** Run for up to `us` of host time. */
  run(us: number): void {
    if (this.idle) return;
    let n = BigInt(Math.floor(us * this.speed));
    if (this.credit >= 0n && this.instret + n > this.credit) n = this.credit > this.instret ? this.credit - this.instret : 0n;
    this.instret += n;
    this.busyUs += (Number(n) / this.speed) * this.inflate;
  }
}

/**
 * Simulate `periods` of 50 ms; the host gives each VM at most `hostShare` of a core per period.
 * `tickMs` is when the scheduler's timer really fires (later than 50 ms when the event loop is busy).
 */
function simulate(vms: SimVm[], cpus: number, periods: number, hostShare = 1, tickMs = 50, sched?: FairShareScheduler, start = 0): number {
  const cpuTimeUs = () => vms.reduce((sum, v) => sum + v.busyUs / v.inflate, 0);
  sched ??= new FairShareScheduler(() => vms, { cpus, periodMs: 50, cpuTimeUs });
  let now = start;
  for (let p = 0; p < periods; p++) {
    sched.tick(now);
    for (const vm of vms) vm.run(tickMs * 1000 * hostShare);
    now += tickMs;
  }
  return now;
}

test('weights 1:2:4 on one core, and a cap', () => {
  const vms = [new SimVm('a', 256, undefined), new SimVm('b', 512, undefined), new SimVm('c', 1024, undefined), new SimVm('capped', 100_000, 0.25)];
  simulate(vms, 1, 400);
  const [a, b, c, capped] = vms.map((v) => Number(v.instret));
  assert.ok(Math.abs(b / a - 2) < 0.1 && Math.abs(c / a - 4) < 0.2, `${a}:${b}:${c}`);
  const cappedCores = vms[3].busyUs / (400 * 50_000);
  assert.ok(cappedCores <= 0.25 && cappedCores > 0.22, `capped VM used ${cappedCores}`);
  const total = vms.reduce((s, v) => s + v.busyUs, 0) / (400 * 50_000);
  assert.ok(total <= 1.01 && total > 0.9, `VMs used ${total} cores of 1`);
  void capped;
});

test('an idle VM leaves its share; ratios hold when the host gives less than assumed', () => {
  const vms = [new SimVm('a', 1024, undefined), new SimVm('b', 2048, undefined), new SimVm('sleepy', 1024, undefined)];
  vms[2].idle = true;
  simulate(vms, 1, 400, 0.3);
  const [a, b] = vms.map((v) => Number(v.instret));
  assert.ok(Math.abs(b / a - 2) < 0.1, `b/a = ${b / a} with a starved host`);
  assert.equal(vms[2].instret, 0n);
});

test('an idle VM wakes without waiting for a period when a core is spare, and with an allowance when none is', () => {
  // Two cores, one VM busy: the idle one would get a whole core if it woke, so it may run at once.
  const vms = [new SimVm('busy', 1024, undefined), new SimVm('sleepy', 1024, undefined), new SimVm('capped', 1024, 0.5)];
  vms[1].idle = true;
  vms[2].idle = true;
  simulate(vms, 2, 3);
  assert.equal(vms[1].credit, -1n, 'idle VM with a spare core: no limit');
  assert.ok(vms[2].credit >= 0n, 'a capped idle VM keeps its allowance');
  // Waking, it runs a whole period before the scheduler has seen it busy.
  vms[1].idle = false;
  vms[1].run(50_000);
  assert.equal(vms[1].instret, 50_000n * 100n);
  // One core, one VM busy: the idle one only gets its small allowance.
  const one = [new SimVm('busy', 1024, undefined), new SimVm('sleepy', 1024, undefined)];
  one[1].idle = true;
  simulate(one, 1, 3);
  assert.ok(one[1].credit >= 0n && one[1].credit < 1_000_000n, `allowance ${one[1].credit}`);
});

test('a scheduler timer that fires late still hands out the time that passed', () => {
  // Twenty VMs on two cores, the timer firing every 500 ms instead of 50 (a busy
  // event loop): each VM should still get about a tenth of a core.
  const vms = Array.from({ length: 20 }, (_, i) => new SimVm(`v${i}`, 1024, undefined));
  simulate(vms, 2, 60, 1, 500);
  const cores = vms.reduce((s, v) => s + v.busyUs, 0) / (60 * 500_000);
  assert.ok(cores > 1.6 && cores <= 2.05, `VMs used ${cores.toFixed(2)} cores of 2 with a late timer`);
  const each = vms.map((v) => v.busyUs / (60 * 500_000));
  assert.ok(Math.min(...each) > 0.08, `a VM got only ${Math.min(...each).toFixed(3)} of a core`);
});

test('a speed learnt too low while the host was crowded recovers once it is not', () => {
  // Twenty VMs start on two cores while the host is crowded: their busy (wall)
  // time overstates CPU time fortyfold, so the speed they are measured at is a
  // fortieth of the real one. Then the crowd goes: within a few seconds each
  // must get about its tenth of a core again.
  const vms = Array.from({ length: 20 }, (_, i) => new SimVm(`v${i}`, 1024, undefined));
  const cpuTimeUs = () => vms.reduce((sum, v) => sum + v.busyUs / v.inflate, 0);
  const sched = new FairShareScheduler(() => vms, { cpus: 2, periodMs: 50, cpuTimeUs });
  for (const vm of vms) vm.inflate = 40;
  let now = simulate(vms, 2, 100, 0.05, 50, sched);
  for (const vm of vms) vm.inflate = 1;
  now = simulate(vms, 2, 100, 1, 50, sched, now); // 5 s to recover
  const before = vms.map((v) => v.busyUs);
  simulate(vms, 2, 100, 1, 50, sched, now);
  const cores = vms.reduce((s, v, i) => s + v.busyUs - before[i], 0) / (100 * 50_000);
  assert.ok(cores > 1.6, `after the crowd left the VMs used ${cores.toFixed(2)} cores of 2`);
});

test('a cap above one core (a multi-hart VM) limits nothing while a VM runs on one thread; a cap below still does', () => {
  // Two cores, two VMs: the one capped at 3 cores (a 4-hart VM) gets a whole core like the uncapped one.
  const vms = [new SimVm('quad', 1024, 3), new SimVm('solo', 1024, undefined), new SimVm('half', 1024, 0.5)];
  simulate(vms, 2.5, 400);
  const cores = vms.map((v) => v.busyUs / (400 * 50_000));
  assert.ok(cores[0] > 0.95 && cores[0] <= 1.001, `quad used ${cores[0]} cores (at most one thread's worth)`);
  assert.ok(cores[1] > 0.95, `solo used ${cores[1]}`);
  assert.ok(cores[2] <= 0.5 && cores[2] > 0.45, `half used ${cores[2]}`);
});

test('rebaseCredit: a VM in its own process gets its grant counted from its current instructions', () => {
  // Granted 1000 from a report at 5000; the VM has since reached 5400: it may run to 6400.
  assert.equal(rebaseCredit(6000n, 5000n, 5400n), 6400n);
  // A count older than the report cannot lower it.
  assert.equal(rebaseCredit(6000n, 5000n, 4000n), 6000n);
  // A grant of nothing stays nothing; no limit stays no limit.
  assert.equal(rebaseCredit(5000n, 5000n, 5400n), 5400n);
  assert.equal(rebaseCredit(4000n, 5000n, 5400n), 5400n);
  assert.equal(rebaseCredit(-1n, 5000n, 5400n), -1n);
});
