// The worker side of a warm worker (see warm-worker.ts): what it does while it
// waits for a VM, so the VM's start finds that work done.

import { readFileSync } from 'node:fs';
import { CpuCore } from '../machine/cpu-core.js';

/** workerData of a warm worker; the VM (WorkerInit) comes later in an 'init' message. */
export interface WarmWorkerData {
  warm: true;
  /** The CPU core to warm up (build/cpu.wasm). */
  wasmPath: string;
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
    const core = new CpuCore(new Uint8Array(readFileSync(wasmPath)), 1 << 20, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
    core.reset(0x8000_0000n);
    core.run(1000);
  } catch {
    // Only a head start: the VM's start reports any real problem with the core.
  }
}
