// The thread of one hart of a VM whose harts run in parallel (SMP phase 2):
// started by the VM's worker (hart-threads.ts), it instantiates the core over
// the VM's shared memory in the hart's area and runs the hart (HartRunner)
// until the VM ends. Device accesses and the SBI console and reset go to the
// worker through the MMIO mailbox; a failure is flagged on the board and its
// message posted on the thread's port.

import { workerData, BroadcastChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setDefaultBudget } from './tier-budget.js';
import { CpuCore, type CoreMemory } from '../machine/cpu-core.js';
import type { SharedBatch } from '../jit/jit.js';
import { jitRegionsFromEnv } from './jit-env.js';
import { HartBoard, WHERE_DEVICE, WHERE_RUN, type HartBoardInit } from '../machine/hart-board.js';
import { HartRunner } from '../machine/hart-runner.js';
import { MmioClient, type Doorbell } from './mmio-mailbox.js';
import { hostCallAddress, HOSTCALL_CONSOLE, HOSTCALL_GETCHAR, HOSTCALL_RESET, MAX_GUEST_PHYS } from './hart-hostcalls.js';
import { makeCollectGarbage } from './collect-garbage.js';

export interface HartThreadData {
  wasmPath: string;
  memory: CoreMemory;
  ramSize: number;
  hart: number;
  board: HartBoardInit;
  mailbox: SharedArrayBuffer;
  doorbell: Doorbell;
  jit: boolean;
  ecallHookMask: number;
  panicVas: bigint[];
  /** The VM's time origin on the wall clock (performance.timeOrigin + the worker's t0), ms. */
  originMs: number;
  port: MessagePort;
  /** The VM's channel on which its hart threads offer each other their translations (null: not shared). */
  jitChannel: string | null;
}

// As in the VM's worker: fewer lukewarm translated blocks go to V8's optimising compiler.
setDefaultBudget();

/**
 * A full collection of this thread's isolate after its translations are dropped:
 * without it the dropped modules kept their code space (a 2-hart VM at its prompt
 * held 84 MB of executable mappings in about 3,900 small ones; 6 MB with one thread).
 */
const collectGarbage = makeCollectGarbage();

const data = workerData as HartThreadData;
const board = new HartBoard(data.board);
try {
  const mmio = new MmioClient(data.mailbox, data.hart, data.doorbell);
  const hart = data.hart;
  // Set once the core exists (its imports are called only from run()).
  let core: CpuCore | null = null;
  let runner: HartRunner | null = null;
  const fault = () => core!.signalMmioFault();
  const guestAccess = (addr: number) => addr >= 0 && addr < MAX_GUEST_PHYS;
  /** Host time waiting for the device thread's answers (statistics). */
  let deviceMs = 0;
  // The VM's time origin on this thread's clock: ticks here match the device thread's.
  const base = performance.timeOrigin + performance.now() - data.originMs;
  const origin = performance.now() - base;
  const nowTicks = () => Math.floor((performance.now() - origin) * 10_000);
  core = new CpuCore(new Uint8Array(readFileSync(data.wasmPath)), data.ramSize, {
    mmioRead: (a, size) => {
      if (!guestAccess(a)) {
        fault();
        return 0;
      }
      board.setWhere(hart, WHERE_DEVICE);
      const t = performance.now();
      const r = mmio.read(a, size);
      deviceMs += performance.now() - t;
      board.setWhere(hart, WHERE_RUN);
      if (r.fault) fault();
      return r.value;
    },
    mmioWrite: (a, size, v) => {
      if (!guestAccess(a)) {
        fault();
        return;
      }
      board.setWhere(hart, WHERE_DEVICE);
      // The core's value is a u32 that arrives as a signed i32: unsigned here, or a value
      // with bit 31 set lost its low bits on the way (through the mailbox's 64-bit word and
      // back to a Number): a virtqueue at 0x8xxx_x400 was set up at 0x8xxx_x000.
      const t = performance.now();
      const bad = mmio.write(a, size, v >>> 0);
      deviceMs += performance.now() - t;
      board.setWhere(hart, WHERE_RUN);
      if (bad) fault();
    },
    ecall: () => runner!.ecall(),
    jitFlushed: () => collectGarbage?.(),
    hostTime: nowTicks,
  }, { memory: data.memory, hart });
  core.jit.regions = jitRegionsFromEnv();
  if (data.jitChannel !== null) shareTranslations(core, data.jitChannel);
  runner = new HartRunner(core, board, {
    nowTicks: () => BigInt(nowTicks()),
    consoleWrite: (length) => {
      mmio.write(hostCallAddress(HOSTCALL_CONSOLE, hart), 4, length);
    },
    consoleReadByte: () => mmio.read(hostCallAddress(HOSTCALL_GETCHAR, hart), 4).value - 1,
    systemReset: (kind, code) => {
      mmio.write(hostCallAddress(HOSTCALL_RESET, hart), 4, (kind === 'reset' ? 0x100 : 0) | (code & 0xff));
    },
    deviceWaitUs: () => deviceMs * 1000,
  }, { hart, jit: data.jit, ecallHookMask: data.ecallHookMask, panicVas: data.panicVas });
  runner.run();
} catch (e) {
  if (!board.ended()) {
    board.fail();
    data.port.postMessage({ hart: data.hart, message: e instanceof Error ? e.message : String(e) });
    board.end();
  }
}
data.port.close();

/**
 * Offer this hart's translations to the VM's other hart threads and take
 * theirs (Jit.sharing): a posted WebAssembly.Module shares its compiled code.
 * The channel is read between slices, without waiting.
 */
function shareTranslations(core: CpuCore, name: string): void {
  const channel = new BroadcastChannel(name);
  // Not kept alive by it: the thread ends when its hart does.
  channel.unref();
  core.jit.sharing = {
    send: (b) => channel.postMessage(b),
    receive: () => {
      const got: SharedBatch[] = [];
      // (Node reads a BroadcastChannel like a port here; its typings name only MessagePort)
      const port = channel as unknown as MessagePort;
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) got.push(m.message as SharedBatch);
      return got;
    },
  };
}
