// One hart of test/parallel-harts.test.ts on a thread of its own: a core
// instance over the test's shared memory, in hart area `hart`, runs the bare
// program from `entry` until its pc reaches `end`, after every thread has
// arrived at the start gate (so the harts really overlap). Reports whether it
// got there, its instruction count and s1 and s2 (the programs count there).

import { parentPort, workerData } from 'node:worker_threads';
import { CpuCore, type CoreMemory } from '../../src/machine/cpu-core.js';

interface Job {
  wasm: Uint8Array;
  memory: CoreMemory;
  ramSize: number;
  hart: number;
  entry: bigint;
  end: bigint;
  /** Registers the program starts with: [number, value]. */
  regs: [number, bigint][];
  jit: boolean;
  /** Real barriers for FENCE (CpuCore.setOrderingFences). */
  fences: boolean;
  /** Int32Array over a SharedArrayBuffer: [0] counts arrivals, [1] is the number of threads. */
  gate: Int32Array;
  /** Date.now() after which the thread gives up (a hang fails instead of spinning forever). */
  deadline: number;
}

const job = workerData as Job;
const core = new CpuCore(job.wasm, job.ramSize, {
  mmioRead: () => {
    core.signalMmioFault();
    return 0;
  },
  mmioWrite: () => core.signalMmioFault(),
  ecall: () => {},
}, { memory: job.memory, hart: job.hart });
core.reset(job.entry, job.hart);
core.grantAllMemory();
for (const [r, v] of job.regs) core.setX(r, v);
core.setJitEnabled(job.jit);
core.setOrderingFences(job.fences);

Atomics.add(job.gate, 0, 1);
Atomics.notify(job.gate, 0);
while (Atomics.load(job.gate, 0) < job.gate[1]) Atomics.wait(job.gate, 0, Atomics.load(job.gate, 0), 50);

while (core.pc !== job.end && Date.now() < job.deadline) core.run(20_000);
parentPort!.postMessage({ done: core.pc === job.end, pc: core.pc.toString(16), instret: core.instret.toString(), scFails: core.getX(9).toString(), spins: core.getX(18).toString() });
