// PMP points the QEMU comparison (test/guest/bare/pmp.S) cannot cover because
// QEMU 7.2 departs from the spec there: the page walker's A/D update is an
// S-mode store, so a read-only PMP entry over the page table turns it into an
// access fault of the original access; and a reset core has every entry off,
// so S-mode cannot fetch until firmware (grantAllMemory) opens memory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CpuCore } from '../src/machine/cpu-core.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

const ROOT = 0x4000; // page table offset in RAM
const HANDLER = 0x100;
const ECALL = 0x73;
const PTE_VRWX_D = 0x1 | 0x2 | 0x4 | 0x8 | 0x80;
const PTE_A = 0x40n;

function makeCore(): { core: CpuCore; ended: () => boolean } {
  let done = false;
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const core: CpuCore = new CpuCore(wasm, 1 << 20, {
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
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset);
  dv.setUint32(0, 0x00000013, true); // nop (S-mode code)
  dv.setUint32(4, ECALL, true);
  dv.setUint32(HANDLER, ECALL, true); // M trap handler: ends the run
  core.reset(BigInt(RAM_BASE));
  core.exports.setEcallHookMask((1 << 1) | (1 << 3));
  core.writeCsr(0x305, BigInt(RAM_BASE + HANDLER));
  return { core, ended: () => done };
}

function runS(core: CpuCore, ended: () => boolean): void {
  core.pc = BigInt(RAM_BASE);
  core.priv = 1;
  for (let i = 0; i < 100 && !ended(); i++) core.run(100);
  assert.ok(ended(), 'the run ended in an ecall');
}

test('a reset core denies S-mode fetches until firmware grants memory', () => {
  const a = makeCore();
  runS(a.core, a.ended);
  assert.equal(a.core.priv, 3, 'trapped to M');
  assert.equal(a.core.readCsr(0x342), 1n, 'instruction access fault');
  const b = makeCore();
  b.core.grantAllMemory();
  runS(b.core, b.ended);
  assert.equal(b.core.priv, 1, 'the S-mode ecall ran');
});

test('an A/D update the PMP does not let S-mode write is an access fault of the original access', () => {
  for (const writable of [false, true]) {
    const { core, ended } = makeCore();
    const dv = new DataView(core.ram.buffer, core.ram.byteOffset);
    // Root entry 2: a gigapage at RAM_BASE, S RWX, D set, A clear.
    dv.setBigUint64(ROOT + 16, (BigInt(RAM_BASE >>> 12) << 10n) | BigInt(PTE_VRWX_D), true);
    core.grantAllMemory();
    core.writeCsr(0x3b0, (BigInt(RAM_BASE + ROOT) >> 2n) | 0x1ffn); // pmpaddr0: NAPOT over the root page
    core.writeCsr(0x3a0, writable ? 0x1bn : 0x19n); // NAPOT, R (and W)
    core.writeCsr(0x180, (8n << 60n) | BigInt((RAM_BASE + ROOT) >>> 12)); // satp: Sv39
    runS(core, ended);
    const a = dv.getBigUint64(ROOT + 16, true) & PTE_A;
    if (writable) {
      assert.equal(core.priv, 1, 'the S-mode ecall ran');
      assert.equal(a, PTE_A, 'A was set');
    } else {
      assert.equal(core.readCsr(0x342), 1n, 'instruction access fault');
      assert.equal(core.readCsr(0x341), BigInt(RAM_BASE), 'at the first fetch');
      assert.equal(a, 0n, 'A was not set');
    }
  }
});
