// The worker side of a warm worker (see warm-worker.ts): what it does while it
// waits for a VM, so the VM's start finds that work done.

import { readFileSync } from 'node:fs';
import { CpuCore, PreparedCore } from '../machine/cpu-core.js';
import { VirtMachine, type MachineConfig, type MachineHost } from '../machine/virt.js';

/** workerData of a warm worker; the VM (WorkerInit) comes later in an 'init' message. */
export interface WarmWorkerData {
  warm: true;
  /** The CPU core to warm up (build/cpu.wasm). */
  wasmPath: string;
  /** Also instantiate a core for this much guest RAM, for a VM of that size to take (PreparedCore). */
  prepareMiB?: number;
}

/** The core this worker prepared while it waited, until a VM takes it. */
let prepared: { core: PreparedCore; wasmPath: string } | null = null;

/** Make the core a VM of `memMiB` is likely to want (the owner's guess: the size of its last VM). */
export function prepareCore(wasmPath: string, memMiB: number): void {
  try {
    prepared = { core: new PreparedCore(new Uint8Array(readFileSync(wasmPath)), memMiB * 1024 * 1024), wasmPath };
  } catch {
    prepared = null; // only a head start
  }
}

/** The prepared core if it fits this VM (same core file, same RAM size); each is given out once. */
export function takePreparedCore(wasmPath: string, ramSize: number): PreparedCore | null {
  const p = prepared;
  prepared = null;
  return p && p.wasmPath === wasmPath && p.core.ramSize === ramSize ? p.core : null;
}

export function isWarmWorkerData(d: unknown): d is WarmWorkerData {
  return typeof d === 'object' && d !== null && (d as { warm?: unknown }).warm === true;
}

/**
 * Compile the core and run its entry points once on a small throwaway machine:
 * V8 compiles wasm functions when first called and keeps the compiled module
 * for the whole process, so the VM's own core is then instantiated from a
 * cache and its first reset and slice run compiled code.
 */
export function warmUp(wasmPath: string): void {
  try {
    const wasm = new Uint8Array(readFileSync(wasmPath));
    const core = new CpuCore(wasm, 1 << 20, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
    core.reset(0x8000_0000n);
    core.run(1000);
    // The same for the JS that builds a machine, saves and restores its state (V8
    // compiles a function when first called, per thread): a machine with the
    // usual devices, firmware `wfi; j -4`, built, saved and restored once.
    const host: MachineHost = { consoleOut: () => {}, power: () => {}, randomBytes: (n) => new Uint8Array(n) };
    const config: MachineConfig = {
      ramSize: 2 << 20, bios: new Uint8Array([0x73, 0x00, 0x50, 0x10, 0x6f, 0xf0, 0xdf, 0xff]), bootargs: '', deterministic: false,
      rng: true, virtioConsole: true, powerButton: true,
    };
    const made = VirtMachine.create(wasm, config, host);
    if (!made.ok) return;
    made.machine.runSlice(1000);
    const state = made.machine.saveState();
    VirtMachine.restore(wasm, { ...config, bios: undefined }, host, JSON.parse(JSON.stringify(state)) as unknown, () => ({ ok: true }));
  } catch {
    // Only a head start: the VM's start reports any real problem with the core.
  }
}
