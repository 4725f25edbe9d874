// The core's pc breakpoints on a small M-mode program: a loop calls a
// function on another page 1000 times. With a breakpoint on the function,
// run() stops before each call's first instruction (pc on it, nothing
// retired), stepping over it resumes, and the program computes the same
// result in the same number of instructions as without the breakpoint. With
// the translator on, the loop's page is still translated while the
// breakpoint's page never is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CpuCore, EXIT_BREAKPOINT, MAX_BREAKPOINTS } from '../src/machine/cpu-core.js';
import { RAM_BASE } from '../src/machine/layout.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

const CALLS = 1000;
const FUNC = BigInt(RAM_BASE + 0x2000);

function program(): Uint8Array {
  const ram = new Uint8Array(0x3000);
  const dv = new DataView(ram.buffer);
  const at = (off: number, insns: number[]) => insns.forEach((x, i) => dv.setUint32(off + i * 4, x >>> 0, true));
  at(0, [
    0x00000293, // li t0, 0
    0x3e800313, // li t1, 1000
    0x7f9010ef, // 8: jal ra, FUNC
    0xfff30313, // addi t1, t1, -1
    0xfe031ce3, // bnez t1, 8
    0x00000073, // 0x14: ecall (the end: the host hook stops the run)
    0x0000006f, // j .
  ]);
  at(0x2000, [
    0x00128293, // addi t0, t0, 1
    0x00008067, // ret
  ]);
  return ram;
}

/** instret when the program's final ecall ran, per core. */
const endedAt = new WeakMap<CpuCore, bigint>();

function makeCore(jit: boolean): CpuCore {
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const core: CpuCore = new CpuCore(wasm, 1 << 20, {
    mmioRead: () => {
      core.signalMmioFault();
      return 0;
    },
    mmioWrite: () => core.signalMmioFault(),
    ecall: () => {
      endedAt.set(core, core.instret);
      core.exports.requestExit();
    },
  });
  core.ram.set(program());
  core.reset(BigInt(RAM_BASE));
  core.exports.setDeterministic(1);
  core.exports.setEcallHookMask(1 << 3); // M-mode ecalls go to the hook above
  core.setJitEnabled(jit);
  return core;
}

/** Run to the end loop; returns the breakpoint stops and the instructions retired up to the end. */
function runToEnd(core: CpuCore, onStop: () => void): { stops: number; instret: bigint } {
  let stops = 0;
  for (let i = 0; i < 100_000 && !endedAt.has(core); i++) {
    const r = core.run(1000);
    if (r === EXIT_BREAKPOINT) {
      stops++;
      onStop();
    }
  }
  const at = endedAt.get(core);
  assert.ok(at !== undefined, 'the program reached its end');
  return { stops, instret: at };
}

/** Instructions retired inside translated blocks. */
const jitInsns = (core: CpuCore) => core.exports.getJitInstructions();

for (const jit of [false, true]) {
  test(`a breakpoint stops before each call and stepping over resumes (translator ${jit ? 'on' : 'off'})`, () => {
    const plain = makeCore(jit);
    const ref = runToEnd(plain, () => assert.fail('no breakpoint is set'));
    assert.equal(plain.getX(5), BigInt(CALLS));

    const core = makeCore(jit);
    core.setBreakpoint(2, FUNC);
    assert.equal(core.breakpoint(2), FUNC);
    let retiredAtStop = -1n;
    const got = runToEnd(core, () => {
      assert.equal(core.pc, FUNC, 'stopped on the breakpoint');
      assert.notEqual(core.instret, retiredAtStop, 'each stop is a new call');
      retiredAtStop = core.instret;
      core.stepOverBreakpoint();
    });
    assert.equal(got.stops, CALLS, 'one stop per call');
    assert.equal(core.getX(5), BigInt(CALLS), 'the function ran every time');
    assert.equal(got.instret, ref.instret, 'a stop retires nothing');
    if (jit) {
      assert.ok(jitInsns(plain) > 0n, 'without a breakpoint the loop runs translated');
      assert.ok(jitInsns(core) > 0n, 'the loop page is still translated');
    }
  });
}

test('a stop without stepping over stays on the breakpoint; clearing it lets the program finish', () => {
  const core = makeCore(true);
  core.setBreakpoint(0, FUNC);
  let r = 0;
  for (let i = 0; i < 100 && r !== EXIT_BREAKPOINT; i++) r = core.run(1000);
  assert.equal(r, EXIT_BREAKPOINT);
  const at = core.instret;
  assert.equal(core.run(1000), EXIT_BREAKPOINT, 'stops again at once');
  assert.equal(core.instret, at);
  core.setBreakpoint(0, null);
  assert.equal(core.breakpoint(0), null);
  const rest = runToEnd(core, () => assert.fail('the breakpoint was cleared'));
  assert.equal(rest.stops, 0);
  assert.equal(core.getX(5), BigInt(CALLS));
});

test('bad breakpoint slots and addresses are refused', () => {
  const core = makeCore(false);
  assert.throws(() => core.setBreakpoint(MAX_BREAKPOINTS, FUNC), RangeError);
  assert.throws(() => core.setBreakpoint(-1, FUNC), RangeError);
  assert.throws(() => core.setBreakpoint(0, FUNC + 1n), RangeError);
  assert.throws(() => core.setBreakpoint(0, -4n), RangeError);
});
