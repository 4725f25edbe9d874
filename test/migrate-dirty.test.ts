// Dirty-page tracking for live migration, on the core directly: a small M-mode
// program stores (sd, sw, amoadd) to three chosen pages in a loop; after a new
// round starts the dirty map shows exactly those pages, with the interpreter
// and with translated code. A page written in the previous round (its store
// TLB entry filled then) is caught again, and device writes mark pages too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CpuCore } from '../src/machine/cpu-core.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

const LOOPS = 2000; // fits addi's 12-bit immediate
const T0 = 5;
const A0 = 10;
const A1 = 11;
const A2 = 12;

const addi = (rd: number, rs1: number, imm: number) => ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
const store = (f3: number, rs2: number, rs1: number, imm: number) => (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23;
const amoaddW = (rd: number, rs2: number, rs1: number) => (rs2 << 20) | (rs1 << 15) | (2 << 12) | (rd << 7) | 0x2f;
function bne(rs1: number, rs2: number, off: number): number {
  const i = off & 0x1fff;
  return (((i >> 12) & 1) << 31) | (((i >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12) | (((i >> 1) & 0xf) << 8) | (((i >> 11) & 1) << 7) | 0x63;
}

const PROGRAM = [
  addi(T0, 0, LOOPS),
  store(3, T0, A0, 0), // sd t0, 0(a0)
  store(2, T0, A1, 8), // sw t0, 8(a1)
  amoaddW(0, T0, A2), // amoadd.w zero, t0, (a2)
  addi(T0, T0, -1),
  bne(T0, 0, -16),
  0x00000073, // ecall: the hook ends the run
  0x0000006f, // j .
];

function makeCore(jit: boolean): { core: CpuCore; ended: () => boolean; restart: () => void } {
  let done = false;
  const core: CpuCore = new CpuCore(new Uint8Array(readFileSync(defaultWasmPath())), 1 << 20, {
    mmioRead: () => {
      core.signalMmioFault();
      return 0;
    },
    mmioWrite: () => core.signalMmioFault(),
    ecall: () => {
      done = true;
      core.exports.requestExit();
    },
  });
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.byteLength);
  PROGRAM.forEach((x, i) => dv.setUint32(i * 4, x >>> 0, true));
  core.reset(BigInt(RAM_BASE));
  core.exports.setDeterministic(1);
  core.exports.setEcallHookMask(1 << 3);
  core.setJitEnabled(jit);
  return { core, ended: () => done, restart: () => { done = false; core.pc = BigInt(RAM_BASE); } };
}

const pageAddr = (p: number) => BigInt(RAM_BASE + p * 4096);
const marked = (map: Uint8Array) => [...map.keys()].filter((p) => map[p] !== 0);

function runRound(c: ReturnType<typeof makeCore>, pages: [number, number, number]): number[] {
  c.restart();
  c.core.setX(A0, pageAddr(pages[0]));
  c.core.setX(A1, pageAddr(pages[1]));
  c.core.setX(A2, pageAddr(pages[2]) + 0x40n);
  c.core.takeDirtyPages(); // a new round starts here
  for (let i = 0; i < 10_000 && !c.ended(); i++) c.core.run(1000);
  assert.ok(c.ended(), 'the program reached its end');
  return marked(c.core.takeDirtyPages());
}

for (const jit of [false, true]) {
  test(`the dirty map holds exactly the pages stored to (${jit ? 'translated code' : 'interpreter'})`, () => {
    const c = makeCore(jit);
    assert.deepEqual(runRound(c, [10, 37, 200]), [10, 37, 200]);
    // Pages 10 and 37 had store TLB entries (and, with the translator, hot code
    // storing through them): a new round must see them again.
    assert.deepEqual(runRound(c, [37, 10, 201]), [10, 37, 201]);
    assert.deepEqual(runRound(c, [37, 37, 37]), [37]);
    if (jit) assert.ok(c.core.exports.getJitInstructions() > BigInt(LOOPS), 'translated code ran the loop');
    else assert.equal(c.core.exports.getJitInstructions(), 0n);
    // What the program stored is really there: sd wrote t0's last value (1) to page 37.
    assert.equal(c.core.ram[37 * 4096], 1);
    // A device write (DMA) marks the pages it covers, also across a page boundary.
    c.core.noteRamWrite(99 * 4096 + 4000, 200);
    assert.deepEqual(marked(c.core.takeDirtyPages()), [99, 100]);
    assert.deepEqual(marked(c.core.takeDirtyPages()), [], 'nothing written since the last round');
  });
}
