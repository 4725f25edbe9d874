// The device thread's side of a VM whose harts run in parallel (SMP phase 2):
// the VM's worker keeps the machine (devices, PLIC, the owner protocol) and
// starts one thread per hart (hart-thread.ts) over the machine's shared memory.
// It answers their device accesses and SBI console/reset calls (MMIO mailbox),
// and can park every hart at a safe point, which puts each hart's registers in
// its phase-1 slot (HART_CTX) and its HSM state in the HartSet: a parked
// parallel VM looks exactly like a phase-1 VM to snapshots and statistics.

import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { jitShareFromEnv } from './jit-env.js';
import type { VirtMachine } from '../machine/virt.js';
import { HartBoard, type HartLoopCounts, HSM_STARTED, HSM_START_PENDING, HSM_SUSPENDED, WHERE_NAMES } from '../machine/hart-board.js';
import type { HartReport } from '../machine/harts.js';
import { pokeHart } from '../machine/hart-runner.js';
import { CPU_FIELDS } from '../machine/cpu-persist.js';
import { createMmioMailbox, MmioServer, type Doorbell, type MmioAnswer } from './mmio-mailbox.js';
import { hostCallOf, HOSTCALL_CONSOLE, HOSTCALL_GETCHAR, HOSTCALL_RESET } from './hart-hostcalls.js';
import type { HartThreadData } from './hart-thread.js';

const F_INSTRET = CPU_FIELDS.indexOf('instret');
const F_ECALL_HOOK = CPU_FIELDS.indexOf('ecallHookMask');
/** How long a park may take before it counts as a hang (a hart stuck in a device access is served meanwhile). */
const PARK_TIMEOUT_MS = 30_000;

export interface HartThreadsOptions {
  wasmPath: string;
  jit: boolean;
  panicVas: bigint[];
  /** The VM's time origin on the wall clock (ms): performance.timeOrigin + the worker's t0. */
  originMs: number;
  /** What the device thread sleeps on: a hart's request rings it. */
  doorbell: Doorbell;
}

/** One hart thread's loop so far (`--stats`; bench/smp-idle.ts reads these lines). */
export function hartLoopLine(h: number, c: HartLoopCounts, busyUs: number): string {
  const f = (n: number) => n.toLocaleString('en-US');
  return `  hart ${h} loop${' '.repeat(Math.max(1, 11 - String(h).length))}${f(c.slices)} slices, ${f(c.sleeps)} sleeps (${f(c.emptyWakes)} woken for nothing), ${f(c.translations)} translations in ${f(c.modules)} modules, ` +
    `${f(Math.round(c.jitUs / 1000))} ms translating, ${f(Math.round(busyUs / 1000))} ms in slices; ${f(c.fencesSkipped)} remote fences to sleeping harts not waited for; ` +
    `waited ${f(Math.round(c.fenceWaitUs / 1000))} ms for fence acknowledgements, ${f(Math.round(c.deviceUs / 1000))} ms for devices; ${f(Math.round(c.sleepUs / 1000))} ms asleep; ${f(c.pauses)} slices ended by PAUSE; ${f(c.sharedBlocks)} translations in ${f(c.shared)} modules taken from other harts`;
}

export class HartThreads {
  readonly board: HartBoard;
  private readonly server: MmioServer;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  /** The machine's instruction count when the threads started (a restored VM's count goes on from there). */
  private baseInstret: bigint;
  private unmapped = false;
  private parkedNow = false;
  private ended = false;

  constructor(private readonly m: VirtMachine, opts: HartThreadsOptions) {
    const n = m.harts.count;
    const init = HartBoard.create(n, opts.doorbell);
    this.board = new HartBoard(init);
    // A line change or a hold reaches a running hart at its next block head, not at its slice's end.
    this.board.poke = pokeHart(m.core.memoryBuffer);
    const mailbox = createMmioMailbox(n);
    this.server = new MmioServer(mailbox, (write, addr, size, value) => this.access(write, addr, size, value));
    // A mapped device never faults (it ignores what it does not implement), so writes into its range need not wait.
    this.server.setPostable(m.bus.ranges());
    m.bus.onUnmapped = () => {
      this.unmapped = true;
    };
    m.core.onCodeRetired = () => this.board.codeRetired();
    // Every hart's thread takes its registers from its slot: the live one goes there first.
    m.core.exports.hartSaveTo(m.harts.current);
    m.harts.toBoard(this.board, true);
    m.harts.board = this.board;
    this.baseInstret = m.core.instret;
    const ecallHookMask = Number(m.core.exports.cpuStateGet(F_ECALL_HOOK));
    const url = new URL('./hart-thread.js', import.meta.url);
    // One channel per VM (a daemon's VMs each have their own), named at random.
    const jitChannel = n > 1 && opts.jit && jitShareFromEnv() ? `tsvisor-jit-${randomUUID()}` : null;
    for (let h = 0; h < n; h++) {
      const { port1, port2 } = new MessageChannel();
      const data: HartThreadData = {
        wasmPath: opts.wasmPath, memory: m.core.memory, ramSize: m.core.ramSize, hart: h, board: init, mailbox,
        doorbell: opts.doorbell, jit: opts.jit, ecallHookMask, panicVas: opts.panicVas, originMs: opts.originMs, port: port2, jitChannel,
      };
      const w = new Worker(url, { workerData: data, transferList: [port2] });
      // The VM's worker never returns to its event loop while the guest runs, and must be able to end without them.
      w.unref();
      this.workers.push(w);
      this.ports.push(port1);
    }
  }

  /** A device access or a host call from hart thread. */
  private access(write: boolean, addr: number, size: number, value: number): MmioAnswer {
    const call = hostCallOf(addr);
    if (call) {
      if (call.hart >= this.board.harts) return { value: 0, fault: true };
      switch (call.kind) {
        case HOSTCALL_CONSOLE: {
          const n = Math.max(0, Math.min(value, this.board.consoleBytes[call.hart].length));
          this.m.sbiHost.consoleWrite(this.board.consoleBytes[call.hart].slice(0, n));
          return { value: 0, fault: false };
        }
        case HOSTCALL_GETCHAR:
          return { value: this.m.sbiHost.consoleReadByte() + 1, fault: false };
        case HOSTCALL_RESET:
          this.board.noteReset();
          this.m.sbiHost.systemReset(value & 0x100 ? 'reset' : 'poweroff', value & 0xff);
          return { value: 0, fault: false };
        default:
          return { value: 0, fault: true };
      }
    }
    this.unmapped = false;
    if (write) {
      this.m.bus.write(addr, size, value);
      return { value: 0, fault: this.unmapped };
    }
    const v = this.m.bus.read(addr, size);
    return { value: v, fault: this.unmapped };
  }

  /**
   * The device thread's turn: answer the harts' requests and let the devices
   * work. Returns how many requests were answered. Throws when a hart thread failed.
   */
  serve(): number {
    let n = this.server.serve();
    // Device accesses come in bursts (the console: a status read and a data write per character): poll on a little.
    if (n > 0) n += this.server.poll();
    this.m.serviceDevices();
    this.syncCounts();
    if (this.board.panicked() && !this.m.panicked) this.m.panicked = true;
    if (this.board.failed()) throw new Error(this.failure());
    return n;
  }

  private failure(): string {
    for (const p of this.ports) {
      const got = receiveMessageOnPort(p);
      if (got) {
        const msg = got.message as { hart: number; message: string };
        return `hart ${msg.hart}: ${msg.message}`;
      }
    }
    return 'a hart thread failed';
  }

  /** The machine's instruction count is the sum of its harts' (the stall watch, credit and statistics read it). */
  private syncCounts(): void {
    this.m.core.exports.cpuStateSet(F_INSTRET, this.baseInstret + this.board.totalInstret());
  }

  /**
   * The daemon's credit (a limit on the machine's instruction count, or null):
   * the harts together run up to it and then wait (HartBoard.setCreditLimit).
   */
  setCredit(limit: bigint | null): void {
    this.board.setCreditLimit(limit === null ? null : limit - this.baseInstret);
  }

  /** Every started hart waits for an interrupt (or is stopped). */
  allWaiting(): boolean {
    for (let h = 0; h < this.board.harts; h++) if (!this.board.waiting(h)) return false;
    return true;
  }

  /** Some hart waited in WFI since the counts were last looked at (a sign of life). */
  wfis(): number {
    let n = 0;
    for (let h = 0; h < this.board.harts; h++) n += this.board.wfis(h);
    return n;
  }

  /** Host time all hart threads spent running guest code (us). */
  busyUs(): number {
    let n = 0;
    for (let h = 0; h < this.board.harts; h++) n += this.board.busyUs(h);
    return n;
  }

  /** Interrupts the harts took. */
  interrupts(): bigint {
    let n = 0n;
    for (let h = 0; h < this.board.harts; h++) n += this.board.interrupts(h);
    return n;
  }

  /** Every hart's figures while the threads run (HartSet.report() holds them only once parked). */
  report(): HartReport[] {
    return Array.from({ length: this.board.harts }, (_, h) => {
      const s = this.board.hsm(h);
      return {
        hart: h,
        state: s === HSM_STARTED || s === HSM_START_PENDING ? 'started' : s === HSM_SUSPENDED ? 'suspended' : 'stopped',
        waiting: this.board.waiting(h),
        instructions: Number(this.board.instret(h)),
        interrupts: Number(this.board.interrupts(h)),
        wfis: this.board.wfis(h),
        ipis: this.board.ipis(h),
        switchedIn: 0,
      };
    });
  }

  /**
   * Where every hart is, without stopping them (for a hang: `--stats` and
   * SIGUSR1 print it before the report parks the harts): what each thread is
   * doing, its board words, and its pc, privilege and interrupt state at its
   * last safe point.
   */
  describe(): string {
    const hex = (v: bigint | number) => '0x' + v.toString(16);
    const sv = this.server;
    const lines = [`  hart threads        board ${Object.entries(this.board.vmWords()).map(([k, v]) => `${k}=${v}`).join(' ')}; device time ${hex(this.m.core.exports.getTime())}; ` +
      `mailbox served ${sv.served.toLocaleString('en-US')} (${sv.posted.toLocaleString('en-US')} posted writes, ${sv.postedFaults} of them faulted), ` +
      `${Math.round(sv.pollUs / 1000).toLocaleString('en-US')} ms polling (${sv.pollHits.toLocaleString('en-US')} polls served more, ${sv.pollMisses.toLocaleString('en-US')} in vain), ${sv.pending()} pending`];
    const slots = this.server.slots();
    for (let h = 0; h < this.board.harts; h++) {
      const s = this.board.snapshotWords(h);
      const raw = Object.entries(this.board.rawWords(h)).map(([k, v]) => `${k}=${v}`).join(' ');
      const slot = slots[h];
      lines.push(`  hart ${h} thread     ${WHERE_NAMES[s.where] ?? s.where}${s.where === 3 ? ` (${s.sleepMs} ms)` : ''}; last exit ${s.exit} at pc ${hex(s.pc)} priv ${s.priv}; ` +
        `mip ${hex(s.mip)} mie ${hex(s.mie)} mstatus ${hex(s.mstatus)} stimecmp ${hex(s.stimecmp)} time ${hex(s.time)}; ${raw}; ` +
        `instret ${this.board.instret(h)}; mailbox ${slot.state}${slot.state ? ` at ${hex(slot.addr)}` : ''}`);
    }
    for (let h = 0; h < this.board.harts; h++) lines.push(hartLoopLine(h, this.board.loopCounts(h), this.board.busyUs(h)));
    return lines.join('\n') + '\n';
  }

  /** Each hart's instruction count at the last samplePcs. */
  private sampledInstret: bigint[] = [];

  /** --stats: each hart's pc at its last safe point, weighted by the instructions it ran since the last sample. */
  samplePcs(samples: { add(pc: bigint, weight: number): void }): void {
    for (let h = 0; h < this.board.harts; h++) {
      const n = this.board.instret(h);
      const ran = n - (this.sampledInstret[h] ?? n);
      this.sampledInstret[h] = n;
      if (ran > 0n) samples.add(this.board.snapshotWords(h).pc, Number(ran));
    }
  }

  /** Translation modules the harts hold now (all threads). */
  jitModules(): number {
    let n = 0;
    for (let h = 0; h < this.board.harts; h++) n += this.board.jitModules(h);
    return n;
  }

  /** The idle VM's translator settings reach each hart at its next safe point: batch translation, and dropping all. */
  setJitIdle(on: boolean): void {
    this.board.setJitIdle(on);
  }
  dropTranslations(): void {
    this.board.requestJitDrop();
  }

  /** Watch the kernel's panic() on every hart from now on (a restored VM arms its watch after the threads started). */
  watchPanic(vas: bigint[]): void {
    this.board.watchPanic(vas);
  }

  get parked(): boolean {
    return this.parkedNow;
  }

  /**
   * Stop every hart at its next safe point and bring the machine to the
   * phase-1 picture: the registers in the slots (the current hart's live in
   * the core), HSM states, waits and counters in the HartSet.
   */
  park(): void {
    if (this.parkedNow || this.ended) return;
    this.board.setHold(true);
    const until = Date.now() + PARK_TIMEOUT_MS;
    for (let h = 0; h < this.board.harts; h++) {
      // A hart may be in the middle of a device access: keep answering while waiting.
      while (!this.board.waitParked(h, 1)) {
        this.server.serve();
        if (this.board.failed()) throw new Error(this.failure());
        if (Date.now() > until) throw new Error(`hart ${h} did not stop within ${PARK_TIMEOUT_MS / 1000} s`);
      }
    }
    // Writes the harts posted before they stopped take effect before the machine is looked at.
    while (this.server.pending() > 0) {
      this.server.serve();
      if (Date.now() > until) throw new Error(`posted device writes not served within ${PARK_TIMEOUT_MS / 1000} s`);
    }
    const ex = this.m.core.exports;
    ex.hartAdopt(this.m.harts.current);
    const n = this.board.harts;
    this.m.harts.fromBoard(this.board, Array.from({ length: n }, (_, h) => this.board.instret(h)), Array.from({ length: n }, (_, h) => this.board.interrupts(h)));
    this.syncCounts();
    this.parkedNow = true;
  }

  /** The harts go on from their slots. */
  resume(): void {
    if (!this.parkedNow || this.ended) return;
    // While parked the machine's count is the truth: a restore or an incoming
    // migration may have set it, so the threads' counts go on from there.
    this.baseInstret = this.m.core.instret - this.board.totalInstret();
    this.m.core.exports.hartSaveTo(this.m.harts.current);
    this.m.harts.toBoard(this.board, false);
    this.parkedNow = false;
    this.board.setHold(false);
  }

  /** Park, do `fn` on the quiescent machine, go on. */
  quiesced<T>(fn: () => T): T {
    const was = this.parkedNow;
    this.park();
    try {
      return fn();
    } finally {
      if (!was) this.resume();
    }
  }

  /** End the threads (the VM stops or is replaced). Parks first so the machine holds the harts' final state. */
  stop(): void {
    if (this.ended) return;
    try {
      this.park();
    } catch {
      // a failed or hung hart: end the threads anyway
    }
    this.ended = true;
    this.board.end();
    this.server.close();
    this.m.harts.board = null;
    this.m.core.onCodeRetired = null;
    for (const w of this.workers) void w.terminate();
    for (const p of this.ports) p.close();
  }
}
