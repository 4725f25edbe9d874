// A guest must never crash the host: random instruction streams executed in
// S- and U-mode (with and without paging) may trap as often as they like, but
// the wasm core must never throw out to the host, and the hart must keep going.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { CpuCore } from '../src/machine/cpu-core.js';

const wasm = new Uint8Array(readFileSync(new URL('../../build/cpu.wasm', import.meta.url)));
const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 4 * 1024 * 1024;
const HANDLER = 0x10_0000; // offset in RAM of the M-mode trap handler

// csrr t0, mepc; addi t0, t0, 4; csrw mepc, t0; mret
const SKIP_HANDLER = [0x341022f3, 0x00428293, 0x34129073, 0x30200073];

function makeCore(): { core: CpuCore; mmio: number } {
  let mmio = 0;
  let core!: CpuCore;
  core = new CpuCore(wasm, RAM_SIZE, {
    mmioRead: () => {
      mmio++;
      core.signalMmioFault();
      return 0;
    },
    mmioWrite: () => {
      mmio++;
      core.signalMmioFault();
    },
    ecall: () => {},
  });
  return { core, get mmio() { return mmio; } } as { core: CpuCore; mmio: number };
}

function runRandom(words: number[], priv: 0 | 1, satpMode: 0 | 8 | 9, jit = false, setup?: (core: CpuCore) => void): bigint {
  const { core } = makeCore();
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, RAM_SIZE);
  // Random code at the start of RAM, repeated to fill 64 KiB so execution stays in it for a while.
  for (let i = 0; i < 16384; i++) dv.setUint32(i * 4, words[i % words.length] >>> 0, true);
  SKIP_HANDLER.forEach((w, i) => dv.setUint32(HANDLER + i * 4, w, true));
  core.reset(BigInt(RAM_BASE));
  core.grantAllMemory(); // PMP: let S/U reach memory, as firmware would
  core.writeCsr(0x305, BigInt(RAM_BASE + HANDLER)); // mtvec
  core.writeCsr(0x300, 1n << 13n); // FS on, so FP instructions run too
  if (satpMode) {
    // A root page table full of whatever the random words left in RAM.
    core.writeCsr(0x180, (BigInt(satpMode) << 60n) | BigInt((RAM_BASE + 0x2000) >>> 12));
  }
  setup?.(core);
  core.priv = priv;
  core.setJitEnabled(jit);
  for (let i = 0; i < 20; i++) core.run(5_000);
  return core.instret;
}

test('random instruction streams never crash the host (S and U mode, bare and paged, translator on and off)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 1, maxLength: 64 }),
      fc.constantFrom<0 | 1>(0, 1),
      fc.constantFrom<0 | 8 | 9>(0, 8, 9),
      fc.boolean(),
      (words, priv, mode, jit) => {
        const n = runRandom(words, priv, mode, jit);
        assert.ok(n > 0n, 'the hart made progress');
      },
    ),
    { numRuns: 150, seed: 0x75_76_69 },
  );
});

test('random PMP entries and triggers with random code never crash the host', () => {
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 1, maxLength: 32 }),
      fc.array(u64, { minLength: 16, maxLength: 16 }), // pmpaddr0..15
      u64, // pmpcfg0
      u64, // pmpcfg2
      fc.array(fc.tuple(u64, u64), { minLength: 4, maxLength: 4 }), // tdata1, tdata2 per trigger
      fc.constantFrom<0 | 1>(0, 1),
      fc.boolean(),
      (words, addrs, cfg0, cfg2, trigs, priv, jit) => {
        const n = runRandom(words, priv, 0, jit, (core) => {
          addrs.forEach((a, i) => core.writeCsr(0x3b0 + i, a));
          core.writeCsr(0x3a0, cfg0);
          core.writeCsr(0x3a2, cfg2);
          trigs.forEach(([t1, t2], i) => {
            core.writeCsr(0x7a0, BigInt(i));
            core.writeCsr(0x7a2, t2);
            core.writeCsr(0x7a1, (t1 & ((1n << 60n) - 1n)) | (6n << 60n)); // type 6 with random fields
          });
        });
        assert.ok(n > 0n, 'the hart made progress');
      },
    ),
    { numRuns: 60, seed: 0x706d70 },
  );
});

test('random compressed-heavy streams never crash the host', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 2, maxLength: 64 }), (halves) => {
      const words: number[] = [];
      for (let i = 0; i + 1 < halves.length; i += 2) words.push(((halves[i + 1] << 16) | halves[i]) >>> 0);
      const n = runRandom(words.length ? words : [0x0001_0001], 1, 0);
      assert.ok(n > 0n);
    }),
    { numRuns: 100, seed: 7 },
  );
});

test('an illegal instruction traps to the handler with the instruction bits in mtval', () => {
  const { core } = makeCore();
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, RAM_SIZE);
  dv.setUint32(0, 0xffff_ffff, true); // reserved encoding
  SKIP_HANDLER.forEach((w, i) => dv.setUint32(HANDLER + i * 4, w, true));
  core.reset(BigInt(RAM_BASE));
  core.grantAllMemory();
  core.writeCsr(0x305, BigInt(RAM_BASE + HANDLER));
  core.priv = 1;
  core.exports.run(3); // the faulting instruction, then csrr and addi of the handler
  assert.equal(core.readCsr(0x342), 2n); // mcause: illegal instruction
  assert.equal(core.readCsr(0x343), 0xffff_ffffn); // mtval: the instruction
  assert.equal(core.readCsr(0x341), BigInt(RAM_BASE)); // mepc: the faulting pc
});
