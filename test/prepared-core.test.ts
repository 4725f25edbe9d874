// A core prepared ahead of its machine (PreparedCore: what a warm worker makes
// while it waits) runs a guest exactly as a core made from the module's bytes,
// its host imports reaching the machine that took it; it serves one machine,
// of its own RAM size only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PreparedCore } from '../src/machine/cpu-core.js';
import { VirtMachine, type MachineConfig, type MachineHost } from '../src/machine/virt.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

/** M-mode firmware: store 'A' to the UART (an MMIO write through the core's import), then `wfi; j -4`. */
const FIRMWARE = new Uint8Array(new Uint32Array([0x100002b7, 0x04100313, 0x00628023, 0x10500073, 0xffdff06f]).buffer);
const RAM = 2 << 20;

function run(source: Uint8Array | PreparedCore): { out: string; pc: bigint; instret: bigint } {
  let out = '';
  const host: MachineHost = { consoleOut: (d) => (out += Buffer.from(d).toString('latin1')), power: () => {}, randomBytes: (n) => new Uint8Array(n) };
  const config: MachineConfig = { ramSize: RAM, bios: FIRMWARE, bootargs: '', deterministic: true };
  const made = VirtMachine.create(source, config, host);
  assert.ok(made.ok, made.ok ? '' : made.error);
  made.machine.runSlice(10_000);
  made.machine.runSlice(10_000);
  return { out, pc: made.machine.core.exports.getPc(), instret: made.machine.core.instret };
}

test('a prepared core runs the guest as a core made from bytes, once, for its RAM size', () => {
  const wasm = new Uint8Array(readFileSync(defaultWasmPath()));
  const fromBytes = run(wasm);
  assert.equal(fromBytes.out, 'A');
  const prepared = new PreparedCore(wasm, RAM);
  assert.deepEqual(run(prepared), fromBytes);
  assert.throws(() => run(prepared), /one machine/);
  assert.throws(() => run(new PreparedCore(wasm, RAM * 2)), /RAM/);
});
