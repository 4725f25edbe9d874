// The round-robin harts of one machine without a kernel: a tiny M-mode program
// on every hart (each adds to its own counter with amoadd), started the way
// firmware is (all harts at the entry, a0 = hart id). Checks that every hart
// runs and keeps its own registers, that an idle hart is skipped, that a
// snapshot of a multi-hart machine restores to the same state and continues
// the same way, and that a snapshot does not go into a machine with another
// hart count. Also the per-hart figures (statistics, API, metrics) and their
// shared block. The Linux end of SMP is test/smp.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { VirtMachine, type MachineHost, type MachineState } from '../src/machine/virt.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { QUANTUM, HSM_STARTED, HSM_STOPPED } from '../src/machine/harts.js';
import { HartStatsPublisher, createHartStatsBlock, hartsOfVm, idleHart, readHartStats } from '../src/vm/hart-stats-block.js';

const wasm = new Uint8Array(readFileSync(defaultWasmPath()));

// auipc t2, 1; csrr t0, mhartid; slli t1, t0, 3; c.add t2, t1; c.li t3, 1;
// 1: amoadd.d zero, t3, (t2); c.j 1b   -> counter of hart h at RAM + 0x1000 + 8h
const PROGRAM = Buffer.from([
  0x97, 0x13, 0x00, 0x00, 0xf3, 0x22, 0x40, 0xf1, 0x13, 0x93, 0x32, 0x00, 0x9a, 0x93, 0x05, 0x4e,
  0x2f, 0xb0, 0xc3, 0x01, 0xf5, 0xbf,
]);

const host: MachineHost = { consoleOut: () => {}, power: () => {} };

function machine(harts: number): VirtMachine {
  const m = VirtMachine.create(wasm, { ramSize: 16 << 20, bios: new Uint8Array(PROGRAM), bootargs: '', deterministic: true, jit: true, harts }, host);
  assert.ok(m.ok, m.ok ? '' : m.error);
  return m.machine;
}

const counters = (m: VirtMachine, n: number) => {
  const dv = new DataView(m.core.ram.buffer, m.core.ram.byteOffset + 0x1000, 8 * n);
  return Array.from({ length: n }, (_, h) => dv.getBigUint64(8 * h, true));
};

test('every hart runs its quanta in turn and keeps its own registers', () => {
  const m = machine(4);
  assert.deepEqual(m.harts.hsm, [HSM_STARTED, HSM_STARTED, HSM_STARTED, HSM_STARTED]);
  m.runSlice(8 * QUANTUM);
  const c = counters(m, 4);
  // Two quanta each: 5 instructions of setup, then one amoadd per 2 instructions.
  for (const [h, v] of c.entries()) assert.ok(v >= BigInt(QUANTUM - 3) && v <= BigInt(QUANTUM), `hart ${h} counted ${v}`);
  assert.equal(m.harts.stats.instructions.reduce((a, b) => a + b, 0), 8 * QUANTUM);
  assert.ok(m.harts.stats.switches >= 7);
  for (let h = 0; h < 4; h++) {
    assert.equal(m.core.exports.hartRegGet(h, 5), BigInt(h), `t0 of hart ${h} holds its mhartid`);
    assert.equal(m.core.exports.hartRegGet(h, 7), BigInt(RAM_BASE + 0x1000 + 8 * h), `t2 of hart ${h} points at its counter`);
  }
});

test('a stopped hart is skipped; hart_start makes it run', () => {
  const m = machine(2);
  m.harts.hsm[1] = HSM_STOPPED;
  m.runSlice(4 * QUANTUM);
  assert.equal(counters(m, 2)[1], 0n, 'hart 1 stopped');
  assert.equal(m.harts.start(1, BigInt(RAM_BASE), 0n), 'ok');
  assert.equal(m.harts.start(1, BigInt(RAM_BASE), 0n), 'started');
  assert.equal(m.harts.start(2, BigInt(RAM_BASE), 0n), 'invalid');
  m.harts.setField(1, 1, 3n); // keep it in M-mode: the program reads mhartid
  m.runSlice(4 * QUANTUM);
  assert.ok(counters(m, 2)[1] > 0n, 'hart 1 runs after hart_start');
});

test('a multi-hart snapshot restores to the same state and goes on the same way', () => {
  const a = machine(3);
  a.runSlice(5 * QUANTUM + 1234);
  const st: MachineState = JSON.parse(JSON.stringify(a.saveState()));
  assert.equal(st.smp?.cpus.length, 2);
  const r = VirtMachine.restore(wasm, { ramSize: 16 << 20, bootargs: '', deterministic: true, jit: true, harts: 3 }, host, st, (core) => {
    core.ram.set(a.core.ram);
    return { ok: true };
  });
  assert.ok(r.ok, r.ok ? '' : r.error);
  const b = r.machine;
  assert.deepEqual(JSON.parse(JSON.stringify(b.saveState())), st, 'the restored machine saves the same state');
  a.runSlice(3 * QUANTUM);
  b.runSlice(3 * QUANTUM);
  assert.deepEqual(counters(b, 3), counters(a, 3), 'both go on alike');

  const one = VirtMachine.restore(wasm, { ramSize: 16 << 20, bootargs: '', deterministic: true, jit: true, harts: 1 }, host, st, () => ({ ok: true }));
  assert.equal(one.ok, false);
  assert.match(one.ok ? '' : one.error, /several harts; this VM is configured with one/);
  const bad = JSON.parse(JSON.stringify(st));
  bad.smp.harts.current = 7;
  const r2 = VirtMachine.restore(wasm, { ramSize: 16 << 20, bootargs: '', deterministic: true, jit: true, harts: 3 }, host, bad, () => ({ ok: true }));
  assert.equal(r2.ok, false);
  assert.match(r2.ok ? '' : r2.error, /harts: bad current hart/);
});

test('hart counts outside 1..8 are refused with a message', () => {
  for (const harts of [0, 9, 1.5]) {
    const m = VirtMachine.create(wasm, { ramSize: 16 << 20, bios: new Uint8Array(PROGRAM), bootargs: '', deterministic: true, harts }, host);
    assert.equal(m.ok, false);
    assert.match(m.ok ? '' : m.error, /bad hart count/);
  }
});

// csrr t0, mhartid; bnez t0, 1f; 0: j 0b; c.nop; 1: wfi; j 1b
// -> hart 0 spins, every other hart waits in WFI (no interrupt enabled: for ever)
const SPIN_AND_WAIT = Buffer.from([0xf3, 0x22, 0x40, 0xf1, 0x63, 0x94, 0x02, 0x00, 0x01, 0xa0, 0x01, 0x00, 0x73, 0x00, 0x50, 0x10, 0xf5, 0xbf]);

test('per-hart figures: state, waiting, instructions, WFI waits, switches; published and read back across a reboot', () => {
  const made = VirtMachine.create(wasm, { ramSize: 16 << 20, bios: new Uint8Array(SPIN_AND_WAIT), bootargs: '', deterministic: true, jit: true, harts: 3 }, host);
  assert.ok(made.ok, made.ok ? '' : made.error);
  const m = made.machine;
  m.runSlice(4 * QUANTUM);
  const r = m.harts.report();
  assert.deepEqual(r.map((h) => [h.hart, h.state, h.waiting]), [[0, 'started', false], [1, 'started', true], [2, 'started', true]]);
  assert.equal(r.reduce((s, h) => s + h.instructions, 0), 4 * QUANTUM, 'the harts account for every instruction');
  assert.ok(r[0].instructions > 4 * QUANTUM - 20, `hart 0 ran nearly all of it (${r[0].instructions})`);
  for (const h of [1, 2]) {
    assert.ok(r[h].wfis >= 1 && r[h].instructions < 10, `hart ${h} waits: ${JSON.stringify(r[h])}`);
    assert.equal(r[h].switchedIn, 1, `hart ${h} got the core once, then waited`);
  }
  m.harts.sendSoftIpi(2);
  assert.equal(m.harts.report()[2].ipis, 1);

  const block = createHartStatsBlock();
  assert.deepEqual(readHartStats(block, 3), [0, 1, 2].map(idleHart), 'nothing published yet: every hart stopped, counters 0');
  const pub = new HartStatsPublisher(block);
  pub.publish(m.harts.report());
  assert.deepEqual(readHartStats(block, 3), m.harts.report());
  // A guest reboot: the next machine's counts add to the last one's.
  pub.carry(m.harts.report());
  pub.publish(m.harts.report());
  const twice = readHartStats(block, 3);
  assert.equal(twice[0].instructions, 2 * r[0].instructions);
  assert.equal(twice[2].ipis, 2);
  assert.equal(readHartStats(block, 1).length, 1);
  assert.deepEqual(hartsOfVm([], 2), [idleHart(0), idleHart(1)], 'a VM that does not run still has one entry per hart');
});

test('one hart: its figures are the core\'s own counts', () => {
  const made = VirtMachine.create(wasm, { ramSize: 16 << 20, bios: new Uint8Array(SPIN_AND_WAIT), bootargs: '', deterministic: true, jit: true, harts: 1 }, host);
  assert.ok(made.ok, made.ok ? '' : made.error);
  made.machine.runSlice(QUANTUM);
  const [h] = made.machine.harts.report();
  assert.equal(h.instructions, Number(made.machine.core.instret));
  assert.equal(h.state, 'started');
  assert.equal(h.waiting, false);
});
