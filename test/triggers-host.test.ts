// Sdtrig triggers from the host's side (what a debugger stub uses): store,
// load and execute triggers stop run() before the instruction takes effect,
// stepping over resumes, a watched load in a hot loop stops on every
// iteration with the translator on and off, the guest cannot change a host
// trigger, and a guest action-0 trigger follows the M-mode rule QEMU does not
// implement (no firing while mstatus.MIE = 0) and reports the address in mtval.
// Plus PMP/trigger/counter state in a CPU snapshot.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CpuCore, EXIT_BREAKPOINT, MAX_TRIGGERS } from '../src/machine/cpu-core.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { saveCpu, restoreCpu } from '../src/machine/cpu-persist.js';

// ---- a few encoders (RV64I), enough for the programs below ----
const r = (n: number) => n & 31;
const iType = (op: number, f3: number, rd: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (r(rs1) << 15) | (f3 << 12) | (r(rd) << 7) | op) >>> 0;
const addi = (rd: number, rs1: number, imm: number) => iType(0x13, 0, rd, rs1, imm);
const ld = (rd: number, rs1: number, imm: number) => iType(0x03, 3, rd, rs1, imm);
const sd = (rs2: number, rs1: number, imm: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (r(rs2) << 20) | (r(rs1) << 15) | (3 << 12) | ((imm & 31) << 7) | 0x23) >>> 0;
const auipc = (rd: number, imm20: number) => ((imm20 << 12) | (r(rd) << 7) | 0x17) >>> 0;
const csrrw = (rd: number, csr: number, rs1: number) => iType(0x73, 1, rd, rs1, csr);
const csrrs = (rd: number, csr: number, rs1: number) => iType(0x73, 2, rd, rs1, csr);
const csrrsi = (rd: number, csr: number, uimm: number) => iType(0x73, 6, rd, uimm, csr);
const bneBack = (rs1: number, rs2: number, back: number) => {
  const imm = -back;
  return (
    ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (r(rs2) << 20) | (r(rs1) << 15) | (1 << 12) |
      (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0
  );
};
const ECALL = 0x73;
const SPIN = 0x6f; // j .

const DATA = BigInt(RAM_BASE + 0x10000);
const LOOPS = 100;

/**
 * Main program at RAM_BASE:
 *   0x00 auipc t0, 0x10          t0 = DATA
 *   0x04 li t1, LOOPS
 *   0x08 li t2, 0
 *   0x0c ld s0, 8(t0)            (loop)
 *   0x10 addi t2, t2, 1
 *   0x14 addi t1, t1, -1
 *   0x18 bnez t1, 0x0c
 *   0x1c sd t2, 0(t0)
 *   0x20 ld s1, 16(t0)
 *   0x24 li a0, 42
 *   0x28 ecall                   (end)
 */
const MAIN = [auipc(5, 0x10), addi(6, 0, LOOPS), addi(7, 0, 0), ld(8, 5, 8), addi(7, 7, 1), addi(6, 6, -1), bneBack(6, 0, 12),
  sd(7, 5, 0), ld(9, 5, 16), addi(10, 0, 42), ECALL, SPIN];
const PC = (off: number) => BigInt(RAM_BASE + off);

const ended = new WeakSet<CpuCore>();

function makeCore(jit: boolean, code: number[] = MAIN, entryOff = 0): CpuCore {
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const core: CpuCore = new CpuCore(wasm, 1 << 20, {
    mmioRead: () => {
      core.signalMmioFault();
      return 0;
    },
    mmioWrite: () => core.signalMmioFault(),
    ecall: () => {
      ended.add(core);
      core.exports.requestExit();
    },
  });
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset);
  code.forEach((w, i) => dv.setUint32(entryOff + i * 4, w, true));
  core.reset(PC(entryOff));
  core.exports.setDeterministic(1);
  core.exports.setEcallHookMask(1 << 3);
  core.setJitEnabled(jit);
  return core;
}

const dataWord = (core: CpuCore, off: number) =>
  new DataView(core.ram.buffer, core.ram.byteOffset).getBigUint64(Number(DATA) - RAM_BASE + off, true);

/** Run until the program ends; calls onStop at each EXIT_BREAKPOINT. */
function runToEnd(core: CpuCore, onStop: () => void): number {
  let stops = 0;
  for (let i = 0; i < 10_000 && !ended.has(core); i++) {
    if (core.run(500) === EXIT_BREAKPOINT) {
      stops++;
      onStop();
    }
  }
  assert.ok(ended.has(core), 'the program reached its end');
  return stops;
}

for (const jit of [false, true]) {
  test(`host store, load and execute triggers stop before the instruction (translator ${jit ? 'on' : 'off'})`, () => {
    const core = makeCore(jit);
    core.setTrigger(0, { store: true, address: DATA });
    core.setTrigger(1, { load: true, address: DATA + 16n, length: 8n });
    core.setTrigger(3, { execute: true, address: PC(0x24) });
    const seen: Array<[number | null, bigint]> = [];
    runToEnd(core, () => {
      seen.push([core.lastTriggerHit(), core.pc]);
      if (core.pc === PC(0x1c)) assert.equal(dataWord(core, 0), 0n, 'the store has not happened');
      if (core.pc === PC(0x20)) assert.equal(core.getX(9), 0n, 'the load has not happened');
      if (core.pc === PC(0x24)) assert.equal(core.getX(10), 0n, 'the instruction has not run');
      core.stepOverBreakpoint();
    });
    assert.deepEqual(seen, [[0, PC(0x1c)], [1, PC(0x20)], [3, PC(0x24)]]);
    assert.equal(dataWord(core, 0), BigInt(LOOPS), 'the store ran after stepping over');
    assert.equal(core.getX(10), 42n);
    // The guest sees host triggers as type 6 with dmode and action 1.
    const t = core.trigger(0);
    assert.equal(t.tdata1 >> 60n, 6n);
    assert.equal((t.tdata1 >> 59n) & 1n, 1n, 'dmode');
    assert.equal((t.tdata1 >> 12n) & 0xfn, 1n, 'action: debugger');
    assert.equal(t.tdata2, DATA);
    assert.equal(core.trigger(1).tdata2, DATA + 16n + 3n, 'NAPOT over 8 bytes');
  });

  test(`a watched load in a hot loop stops on every iteration (translator ${jit ? 'on' : 'off'})`, () => {
    const plain = makeCore(jit);
    runToEnd(plain, () => assert.fail('no trigger is set'));
    const core = makeCore(jit);
    core.setTrigger(2, { load: true, address: DATA + 8n });
    let last = -1n;
    const stops = runToEnd(core, () => {
      assert.equal(core.pc, PC(0x0c));
      assert.equal(core.lastTriggerHit(), 2);
      assert.notEqual(core.instret, last, 'each stop is a new iteration');
      last = core.instret;
      core.stepOverBreakpoint();
    });
    assert.equal(stops, LOOPS);
    assert.equal(core.instret, plain.instret, 'stops retire nothing');
    assert.equal(dataWord(core, 0), BigInt(LOOPS));
    if (jit) assert.ok(core.exports.getJitInstructions() > 0n, 'the loop still runs translated');
    core.setTrigger(2, null);
    assert.equal(core.trigger(2).tdata1 >> 60n, 15n, 'a freed trigger is disabled (type 15)');
  });
}

test('the guest cannot change a host trigger; bad trigger requests are refused', () => {
  // csrw tselect, zero; csrw tdata1, zero; csrw tdata2, zero; csrr a1, tdata1; csrr a2, tdata2; ecall
  const prog = [csrrw(0, 0x7a0, 0), csrrw(0, 0x7a1, 0), csrrw(0, 0x7a2, 0), csrrs(11, 0x7a1, 0), csrrs(12, 0x7a2, 0), ECALL, SPIN];
  const core = makeCore(false, prog);
  core.setTrigger(0, { execute: true, address: PC(0x800) });
  const before = core.trigger(0);
  runToEnd(core, () => assert.fail('the trigger address is never executed'));
  assert.equal(BigInt.asUintN(64, core.getX(11)), before.tdata1);
  assert.equal(core.getX(12), PC(0x800));
  assert.deepEqual(core.trigger(0), before);
  assert.throws(() => core.setTrigger(MAX_TRIGGERS, { load: true, address: DATA }), RangeError);
  assert.throws(() => core.setTrigger(0, { address: DATA }), RangeError);
  assert.throws(() => core.setTrigger(0, { load: true, address: DATA + 4n, length: 8n }), RangeError);
  assert.throws(() => core.setTrigger(0, { load: true, address: DATA, length: 24n }), RangeError);
});

test('a guest M-mode load trigger fires only while mstatus.MIE = 1, with the address in mtval', () => {
  // 0x00 auipc t0, 0x10; csrw tdata2, t0; li t1, 0x41 (m, load); slli-free: tdata1 = (6 << 60) | 0x41 via li/lui
  const T1 = 0x6000_0000_0000_0041n;
  const prog = [
    auipc(5, 0x10), // 0x00
    csrrw(0, 0x7a2, 5), // 0x04 tdata2 = DATA
    csrrw(0, 0x7a1, 7), // 0x08 tdata1 = t2 (set by the host below)
    ld(12, 5, 0), // 0x0c MIE = 0: no fire
    csrrsi(0, 0x300, 8), // 0x10 set MIE
    ld(13, 5, 0), // 0x14 fires
    ECALL, // 0x18
    SPIN,
  ];
  const core = makeCore(false, prog);
  core.setX(7, T1);
  // The trap handler at 0x100: ecall, which ends the run.
  new DataView(core.ram.buffer, core.ram.byteOffset).setUint32(0x100, ECALL, true);
  core.writeCsr(0x305, PC(0x100));
  new DataView(core.ram.buffer, core.ram.byteOffset).setBigUint64(0x10000, 0x77n, true);
  runToEnd(core, () => assert.fail('no host trigger'));
  assert.equal(core.getX(12), 0x77n, 'the load with MIE = 0 ran');
  assert.equal(core.getX(13), 0n, 'the load with MIE = 1 did not');
  assert.equal(core.readCsr(0x342), 3n, 'mcause: breakpoint');
  assert.equal(core.readCsr(0x341), PC(0x14), 'mepc: the load');
  assert.equal(core.readCsr(0x343), DATA, 'mtval: the address');
});

test('PMP, trigger and counter state round-trips through a CPU snapshot; bad values are refused', () => {
  const a = makeCore(false);
  a.writeCsr(0x3b0, 0x2000_0fffn); // pmpaddr0
  a.writeCsr(0x3a0, 0x9dn | (0x0fn << 8n)); // pmp0cfg: locked NAPOT R X; pmp1cfg: TOR RWX
  a.grantAllMemory();
  a.writeCsr(0xb02, 0x1234_5678n); // minstret
  a.writeCsr(0xb00, 0x10n); // mcycle
  a.writeCsr(0x7a0, 1n);
  a.writeCsr(0x7a2, 0x8000_2000n);
  a.writeCsr(0x7a1, 0x6000_0000_0000_0054n); // m, s, execute
  a.setTrigger(2, { store: true, address: 0x8000_3000n, length: 64n });
  const saved = JSON.parse(JSON.stringify(saveCpu(a)));

  assert.equal(saved.csr.tdata1_2, '0xf000000000000000', "the debugger's trigger is not saved");
  assert.equal(saved.csr.tdata2_2, '0x0');
  const b = makeCore(false);
  assert.deepEqual(restoreCpu(b, saved), { ok: true });
  assert.deepEqual(JSON.parse(JSON.stringify(saveCpu(b))), saved);
  assert.equal(b.readCsr(0x3a0) & 0xffffn, 0x0f9dn);
  assert.equal(b.readCsr(0x3a2) >> 56n, 0x1fn);
  assert.equal(b.readCsr(0x7a0), 1n);
  assert.equal(BigInt.asUintN(64, b.readCsr(0x7a1)), 0x6000_0000_0000_0054n);
  assert.equal(b.readCsr(0xb02), 0x1234_5678n, 'minstret continues from the written value');
  b.writeCsr(0x3a0, 0n);
  assert.equal(b.readCsr(0x3a0), 0x9dn, 'the restored lock holds');

  const spoil = (f: (s: { csr: Record<string, string | undefined> }) => void) => {
    const s = JSON.parse(JSON.stringify(saved));
    f(s);
    return restoreCpu(makeCore(false), s);
  };
  assert.match(JSON.stringify(spoil((s) => (s.csr.pmpcfg0 = '0x60'))), /reserved/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.pmpcfg2 = '0x200'))), /reserved/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.pmpaddr3 = '0xffffffffffffffff'))), /54 bits/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.tselect = '0x9'))), /no such trigger/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.tdata1_0 = '0x2000000000000000'))), /trigger/);
  assert.match(JSON.stringify(spoil((s) => (s.csr.tdata1_1 = '0x6000000000001054'))), /trigger/, 'the guest cannot hold action 1');
  // An older snapshot has none of these fields: it restores, and memory stays open to S/U as it was then.
  const old = JSON.parse(JSON.stringify(saved));
  for (const k of Object.keys(old.csr)) if (/^(pmp|tdata|tselect|instretDelta|cycleDelta)/.test(k)) delete old.csr[k];
  const c = makeCore(false);
  assert.deepEqual(restoreCpu(c, old), { ok: true });
  assert.equal(c.readCsr(0x3a2) >> 56n, 0x1fn, 'entry 15 allows everything');
  assert.equal(c.readCsr(0x3a0), 0n);
  assert.equal(c.readCsr(0xb02), c.instret, 'minstret is the instruction count');
});
