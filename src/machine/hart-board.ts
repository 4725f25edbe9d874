// The words through which the threads of a VM whose harts run in parallel (SMP
// phase 2) reach each other: per hart its SBI HSM state, a wake word it sleeps
// on, the device interrupt lines the PLIC drives into it, a pending SBI IPI,
// remote-fence requests and acknowledgements, and its counters; for the VM a
// hold word (park every hart at a safe point), an exit word and the VM's
// instruction credit from the daemon's scheduler (the harts run while their
// summed count is below it). One
// SharedArrayBuffer, plain Atomics: no Node APIs, so the device thread (the
// VM's worker) and every hart thread use the same code.

/** SBI HSM states as hart_get_status returns them. */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_START_PENDING = 2;
export const HSM_SUSPENDED = 4;

// i32 words per hart
const W_HSM = 0;
const W_WAKE = 1;
const W_LINES = 2;
const W_IPI = 3;
const W_FENCE_REQ = 4;
const W_FENCE_ACK = 5;
const W_WAITING = 6;
const W_PARKED = 7;
const W_WFIS = 8;
const W_IPIS = 9;
const W_CODE_SEEN = 10;
const W_SUSPEND_KIND = 11;
const W_FENCE_KIND = 12;
const W_WHERE = 13;
const W_EXIT = 14;
const W_PRIV = 15;
const W_MODULES = 16;
const W_DROPS = 17;
/** Idle-cost counters (written by the hart's thread): slices run, sleeps (each ends in a wakeup), translations and modules made. */
const W_SLICES = 18;
const W_SLEEPS = 19;
const W_TRANSLATIONS = 20;
const W_MODULES_MADE = 21;
const W_EMPTY_WAKES = 22;
const W_FENCES_SKIPPED = 23;
const W_PAUSES = 24;
/** Translation batches of other harts this hart put back, and their blocks (Jit.sharing). */
const W_SHARED = 25;
const W_SHARED_BLOCKS = 26;
/** The range of the TLB fences asked of the hart since it last looked (RANGE_*; the range is in Q_FENCE_START/SIZE). */
const W_FENCE_RANGE = 27;
const I32_PER_HART = 28;
/**
 * W_FENCE_RANGE: no range noted (a TLB fence then flushes everything), one
 * being written, one noted, or more than one (everything).
 */
const RANGE_NONE = 0;
const RANGE_WRITING = 1;
const RANGE_SET = 2;
const RANGE_ALL = 3;
/** Where hart h's fence request and acknowledgement counters are (i32 index h * perHart + req/ack; tests set them near the wrap). */
export const FENCE_WORDS = { perHart: I32_PER_HART, req: W_FENCE_REQ, ack: W_FENCE_ACK } as const;
// i64 words per hart
const Q_INSTRET = 0;
const Q_INTERRUPTS = 1;
const Q_START_ADDR = 2;
const Q_START_OPAQUE = 3;
const Q_BUSY_US = 4;
// Where the hart was at its last safe point (for the hang dump, HartThreads.describe)
const Q_PC = 5;
const Q_MIP = 6;
const Q_MIE = 7;
const Q_MSTATUS = 8;
const Q_STIMECMP = 9;
const Q_TIME = 10;
const Q_SLEEP_MS = 11;
/** Host time the hart's thread spent translating, compiling and installing (us). */
const Q_JIT_US = 12;
/** Host time the hart's thread slept on its wake word, waited for fence acknowledgements, waited for device accesses (us). */
const Q_SLEEP_US = 13;
const Q_FENCE_WAIT_US = 14;
const Q_DEVICE_US = 15;
/** The range of a TLB fence (see W_FENCE_RANGE): virtual address and size in bytes. */
const Q_FENCE_START = 16;
const Q_FENCE_SIZE = 17;
const I64_PER_HART = 18;
// i32 words of the VM, after the harts'
const G_HOLD = 0;
const G_EXIT = 1;
const G_FAILED = 2;
const G_PANIC = 3;
const G_CODE_GEN = 4;
const G_RESET = 5;
const G_PANIC_WATCH = 6;
const G_JIT_IDLE = 7;
const G_JIT_DROP = 8;
const G_WORDS = 12;
// i64 words of the VM, after the harts' i64 words: the panic() entries to watch
const V_PANIC_VA = 0;
const PANIC_VAS_MAX = 2;
/** The harts run while the sum of their counts is below this; -1: no limit (see setCreditLimit). */
const V_CREDIT = 2;
const VM_I64 = 3;
/** What a hart thread is doing (its `where` word; for the hang dump). */
export const WHERE_RUN = 0;
export const WHERE_SAFE_POINT = 1;
export const WHERE_STOPPED = 2;
export const WHERE_WFI = 3;
export const WHERE_PARKED = 4;
export const WHERE_FENCE_WAIT = 5;
export const WHERE_DEVICE = 6;
export const WHERE_ENDED = 7;
export const WHERE_CREDIT = 8;
/** Translating what became hot in its last slice (between slices: no guest code runs). */
export const WHERE_TRANSLATING = 9;
export const WHERE_NAMES = ['running', 'at a safe point', 'sleeping (stopped)', 'sleeping (WFI)', 'parked', 'waiting for fence acks', 'in a device access', 'ended', 'waiting for credit', 'translating'];
/** The where values of a hart that runs no guest code until it has read its fence requests (requestFenceUnlessAsleep). */
const FENCE_NO_WAIT = WHERE_NAMES.map((_, w) => w === WHERE_WFI || w === WHERE_STOPPED || w === WHERE_CREDIT || w === WHERE_SAFE_POINT || w === WHERE_TRANSLATING);

/** What a hart showed at its last safe point. */
export interface HartSnapshotWords {
  where: number;
  exit: number;
  priv: number;
  pc: bigint;
  mip: bigint;
  mie: bigint;
  mstatus: bigint;
  stimecmp: bigint;
  time: bigint;
  sleepMs: number;
}

/** What a hart thread's loop did so far (for --stats: where an idle VM's host time goes). */
export interface HartLoopCounts {
  /** Calls into the core (slices; a slice ends early at WFI, a poke or a fence). */
  slices: number;
  /** Sleeps on the wake word (WFI, stopped, parked): each ends in a wakeup of the thread. */
  sleeps: number;
  /** WFI sleeps that ended with the hart still not wakeable: woken for nothing (a timeout short of its timer). */
  emptyWakes: number;
  /** Remote fences this hart asked of sleeping harts without waiting for them. */
  fencesSkipped: number;
  /** Slices ended by a PAUSE (a spin loop's cpu_relax()). */
  pauses: number;
  translations: number;
  /** Translation modules compiled. */
  modules: number;
  /** Host time translating, compiling and installing, us. */
  jitUs: number;
  /** Host time asleep on the wake word (WFI, stopped, parked), us. */
  sleepUs: number;
  /** Host time waiting for other harts to acknowledge remote fences, us. */
  fenceWaitUs: number;
  /** Host time waiting for the device thread to answer device accesses and host calls, us. */
  deviceUs: number;
  /** Translation modules of other harts put back here instead of translating, and their blocks. */
  shared: number;
  sharedBlocks: number;
}

/** The pages a remote sfence.vma asks for (SBI RFENCE): virtual address and size in bytes (u64 as the guest passed them). */
export interface FenceRange {
  start: bigint;
  size: bigint;
}

/** Fence kinds: flush the TLB (sfence.vma; also drops links), or only drop links between translated blocks (fence.i). */
export const FENCE_TLB = 1;
export const FENCE_CODE = 2;
/** Console bytes an SBI call on a hart thread hands to the device thread at once. */
export const CONSOLE_CHUNK = 4096;

export interface HartBoardInit {
  sab: SharedArrayBuffer;
  harts: number;
  /** The word the device thread sleeps on: a hart that runs out of credit rings it. */
  deviceBell?: { words: Int32Array; index: number };
}

export class HartBoard {
  readonly harts: number;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  /** Per hart: a buffer for console bytes of SBI console calls. */
  readonly consoleBytes: Uint8Array[];
  private readonly g: number;
  /** Index of the VM's first i64 word. */
  private readonly v: number;

  static create(harts: number, deviceBell?: { words: Int32Array; index: number }): HartBoardInit {
    const bytes = HartBoard.i32Bytes(harts) + (harts * I64_PER_HART + VM_I64) * 8 + harts * CONSOLE_CHUNK;
    const sab = new SharedArrayBuffer(bytes);
    // No limit until the device thread sets one.
    new BigInt64Array(sab, HartBoard.i32Bytes(harts), harts * I64_PER_HART + VM_I64)[harts * I64_PER_HART + V_CREDIT] = -1n;
    return { sab, harts, deviceBell };
  }

  private static i32Bytes(harts: number): number {
    // Rounded up to 8 for the i64 words that follow.
    return Math.ceil(((harts * I32_PER_HART + G_WORDS) * 4) / 8) * 8;
  }

  constructor(init: HartBoardInit) {
    this.harts = init.harts;
    const n32 = init.harts * I32_PER_HART + G_WORDS;
    this.i32 = new Int32Array(init.sab, 0, n32);
    const at64 = HartBoard.i32Bytes(init.harts);
    this.i64 = new BigInt64Array(init.sab, at64, init.harts * I64_PER_HART + VM_I64);
    this.v = init.harts * I64_PER_HART;
    const atConsole = at64 + (init.harts * I64_PER_HART + VM_I64) * 8;
    this.consoleBytes = Array.from({ length: init.harts }, (_, h) => new Uint8Array(init.sab, atConsole + h * CONSOLE_CHUNK, CONSOLE_CHUNK));
    this.g = init.harts * I32_PER_HART;
    this.deviceBell = init.deviceBell ?? null;
  }

  private readonly deviceBell: { words: Int32Array; index: number } | null;

  private w(h: number, i: number): number {
    return h * I32_PER_HART + i;
  }
  private q(h: number, i: number): number {
    return h * I64_PER_HART + i;
  }

  // ---- waking ----

  /** The wake word's value, read before looking for work (a change after it ends the wait). */
  wakeSeen(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_WAKE));
  }
  wake(h: number): void {
    Atomics.add(this.i32, this.w(h, W_WAKE), 1);
    Atomics.notify(this.i32, this.w(h, W_WAKE));
    this.poke?.(h);
  }
  /** Makes a running hart leave its slice soon (set by each thread that holds the core's memory). */
  poke: ((h: number) => void) | null = null;
  wakeAll(): void {
    for (let h = 0; h < this.harts; h++) this.wake(h);
  }
  /** Sleep until woken or `ms` pass. */
  sleep(h: number, seen: number, ms: number): void {
    Atomics.wait(this.i32, this.w(h, W_WAKE), seen, Math.max(0, ms));
  }

  // ---- HSM ----

  hsm(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_HSM));
  }
  setHsm(h: number, v: number): void {
    Atomics.store(this.i32, this.w(h, W_HSM), v);
  }
  /** hart_start: STOPPED -> START_PENDING with its address; false when the hart was not stopped. */
  requestStart(h: number, addr: bigint, opaque: bigint): boolean {
    this.i64[this.q(h, Q_START_ADDR)] = BigInt.asIntN(64, addr);
    this.i64[this.q(h, Q_START_OPAQUE)] = BigInt.asIntN(64, opaque);
    if (Atomics.compareExchange(this.i32, this.w(h, W_HSM), HSM_STOPPED, HSM_START_PENDING) !== HSM_STOPPED) return false;
    this.wake(h);
    return true;
  }
  startRequest(h: number): { addr: bigint; opaque: bigint } {
    return { addr: BigInt.asUintN(64, this.i64[this.q(h, Q_START_ADDR)]), opaque: BigInt.asUintN(64, this.i64[this.q(h, Q_START_OPAQUE)]) };
  }
  /** Non-retentive suspend: where the hart resumes (kept in the start words). */
  setResume(h: number, r: { addr: bigint; opaque: bigint } | null): void {
    Atomics.store(this.i32, this.w(h, W_SUSPEND_KIND), r ? 1 : 0);
    if (r) {
      this.i64[this.q(h, Q_START_ADDR)] = BigInt.asIntN(64, r.addr);
      this.i64[this.q(h, Q_START_OPAQUE)] = BigInt.asIntN(64, r.opaque);
    }
  }
  resumeAt(h: number): { addr: bigint; opaque: bigint } | null {
    return Atomics.load(this.i32, this.w(h, W_SUSPEND_KIND)) ? this.startRequest(h) : null;
  }

  // ---- interrupt lines and IPIs ----

  /** A PLIC output line (a mip bit, MEIP or SEIP) of hart h. */
  setLine(h: number, bit: number, level: boolean): void {
    const m = 1 << bit;
    if (level) Atomics.or(this.i32, this.w(h, W_LINES), m);
    else Atomics.and(this.i32, this.w(h, W_LINES), ~m);
    this.wake(h);
  }
  /** Before the hart's thread starts: its lines as its saved context has them. */
  setLinesTo(h: number, bits: number): void {
    Atomics.store(this.i32, this.w(h, W_LINES), bits);
  }
  lines(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_LINES));
  }
  sendIpi(h: number): void {
    Atomics.add(this.i32, this.w(h, W_IPIS), 1);
    Atomics.store(this.i32, this.w(h, W_IPI), 1);
    this.wake(h);
  }
  /** Take hart h's pending IPI (true once per send, however many were sent meanwhile). */
  takeIpi(h: number): boolean {
    return Atomics.exchange(this.i32, this.w(h, W_IPI), 0) !== 0;
  }

  // ---- remote fences ----

  /**
   * Ask hart h to flush its TLB (`tlb`: the pages of `range` only, if given) or only
   * its links (fence.i); returns the ticket its acknowledgement must reach.
   */
  requestFence(h: number, tlb: boolean, range: FenceRange | null = null): number {
    const t = this.postFence(h, tlb, range);
    this.wake(h);
    return t;
  }

  /**
   * Ask hart h for a fence as requestFence does, but return null, without
   * waking it, when it runs no guest code now: asleep (WFI, stopped), waiting
   * for credit, at a safe point or translating between slices. Such a hart
   * takes the request before it runs another guest instruction (it reads its
   * requests after it stores WHERE_RUN, see HartRunner.run), so the caller
   * need not wait. Sequentially consistent Atomics make this sound: the request
   * is posted here before `where` is read, so either this sees WHERE_RUN (or a
   * device access or fence wait, mid-instruction: then it waits) or the hart's
   * next store of WHERE_RUN comes after the post and its read then sees it.
   * Waiting for a hart that was translating (milliseconds of compiling) was
   * most of the 0.1 to 0.5 s each hart waited for acknowledgements in a boot.
   */
  requestFenceUnlessAsleep(h: number, tlb: boolean, range: FenceRange | null = null): number | null {
    const t = this.postFence(h, tlb, range);
    if (FENCE_NO_WAIT[this.where(h)]) return null;
    this.wake(h);
    return t;
  }

  private postFence(h: number, tlb: boolean, range: FenceRange | null): number {
    // The range goes first: the hart reads it only after it has seen the kind (takeFenceRange).
    if (tlb) this.noteFenceRange(h, range);
    Atomics.or(this.i32, this.w(h, W_FENCE_KIND), tlb ? FENCE_TLB : FENCE_CODE);
    // Tickets are int32 and wrap: `| 0` keeps this one what the word now holds (2^31
    // would be stored as -2^31, and its acknowledgement would never compare as reached).
    return (Atomics.add(this.i32, this.w(h, W_FENCE_REQ), 1) + 1) | 0;
  }
  fenceAcked(h: number, ticket: number): boolean {
    // Compared modulo 2^32, so a hart that received 2^31 fences (days of a fork-heavy
    // guest) is not waited for for ever.
    return ((Atomics.load(this.i32, this.w(h, W_FENCE_ACK)) - ticket) | 0) >= 0;
  }
  /** The fence requests hart h has not acknowledged yet: the ticket to acknowledge, or null. */
  fenceDue(h: number): number | null {
    const req = Atomics.load(this.i32, this.w(h, W_FENCE_REQ));
    return req !== Atomics.load(this.i32, this.w(h, W_FENCE_ACK)) ? req : null;
  }
  /**
   * Note a TLB fence's range for hart h: the first range since the hart last
   * looked is kept; a second one, or a fence without a range, makes it flush everything.
   */
  private noteFenceRange(h: number, range: FenceRange | null): void {
    const at = this.w(h, W_FENCE_RANGE);
    if (range === null) {
      Atomics.store(this.i32, at, RANGE_ALL);
      return;
    }
    for (;;) {
      const s = Atomics.load(this.i32, at);
      if (s === RANGE_ALL) return;
      if (s === RANGE_NONE) {
        if (Atomics.compareExchange(this.i32, at, RANGE_NONE, RANGE_WRITING) !== RANGE_NONE) continue;
        Atomics.store(this.i64, this.q(h, Q_FENCE_START), range.start);
        Atomics.store(this.i64, this.q(h, Q_FENCE_SIZE), range.size);
        // (the hart may have taken the state meanwhile: then this fence flushes everything)
        Atomics.compareExchange(this.i32, at, RANGE_WRITING, RANGE_SET);
        return;
      }
      if (Atomics.compareExchange(this.i32, at, s, RANGE_ALL) === s) return;
    }
  }
  /** After takeFenceKind gave FENCE_TLB: the one range to flush, or null for everything. */
  takeFenceRange(h: number): FenceRange | null {
    if (Atomics.exchange(this.i32, this.w(h, W_FENCE_RANGE), RANGE_NONE) !== RANGE_SET) return null;
    const u64 = (i: number) => BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, i)));
    return { start: u64(Q_FENCE_START), size: u64(Q_FENCE_SIZE) };
  }
  /** What the fences asked of hart h since it last looked: FENCE_TLB and/or FENCE_CODE bits. */
  takeFenceKind(h: number): number {
    return Atomics.exchange(this.i32, this.w(h, W_FENCE_KIND), 0);
  }
  ackFence(h: number, ticket: number): void {
    Atomics.store(this.i32, this.w(h, W_FENCE_ACK), ticket);
    Atomics.notify(this.i32, this.w(h, W_FENCE_ACK));
  }
  /** Wait up to `ms` for hart h's acknowledgement to move (the caller checks fenceAcked again). */
  waitFenceAck(h: number, ticket: number, ms: number): void {
    const v = Atomics.load(this.i32, this.w(h, W_FENCE_ACK));
    if (((v - ticket) | 0) >= 0) return;
    Atomics.wait(this.i32, this.w(h, W_FENCE_ACK), v, ms);
  }

  /** Translations were retired by the device thread (DMA over code): every hart drops its links. */
  codeRetired(): void {
    Atomics.add(this.i32, this.g + G_CODE_GEN, 1);
    // At their next block head, not their slice's end.
    for (let h = 0; h < this.harts; h++) this.poke?.(h);
  }
  /** True when code was retired since hart h last asked. */
  takeCodeRetired(h: number): boolean {
    const g = Atomics.load(this.i32, this.g + G_CODE_GEN);
    if (g === this.i32[this.w(h, W_CODE_SEEN)]) return false;
    this.i32[this.w(h, W_CODE_SEEN)] = g;
    return true;
  }

  // ---- holding and ending ----

  /** Every hart parks at its next safe point (true) or goes on (false). */
  setHold(on: boolean): void {
    Atomics.store(this.i32, this.g + G_HOLD, on ? 1 : 0);
    this.wakeAll();
  }
  held(): boolean {
    return Atomics.load(this.i32, this.g + G_HOLD) !== 0;
  }
  setParked(h: number, on: boolean): void {
    Atomics.store(this.i32, this.w(h, W_PARKED), on ? 1 : 0);
    Atomics.notify(this.i32, this.w(h, W_PARKED));
  }
  parked(h: number): boolean {
    return Atomics.load(this.i32, this.w(h, W_PARKED)) !== 0;
  }
  /** Wait (up to `ms`) for hart h to park. */
  waitParked(h: number, ms: number): boolean {
    if (this.parked(h)) return true;
    Atomics.wait(this.i32, this.w(h, W_PARKED), 0, ms);
    return this.parked(h);
  }
  end(): void {
    Atomics.store(this.i32, this.g + G_EXIT, 1);
    this.wakeAll();
  }
  ended(): boolean {
    return Atomics.load(this.i32, this.g + G_EXIT) !== 0;
  }
  /** A hart thread failed (its error travels on its message port). */
  fail(): void {
    Atomics.store(this.i32, this.g + G_FAILED, 1);
  }
  failed(): boolean {
    return Atomics.load(this.i32, this.g + G_FAILED) !== 0;
  }
  /** A hart entered the kernel's panic(). */
  notePanic(): void {
    Atomics.store(this.i32, this.g + G_PANIC, 1);
  }
  panicked(): boolean {
    return Atomics.load(this.i32, this.g + G_PANIC) !== 0;
  }
  /**
   * Watch the kernel's panic() entries from now on (a restored VM finds them
   * only after its threads started): each hart sets its breakpoints at its next
   * safe point (watchedPanic).
   */
  watchPanic(vas: bigint[]): void {
    if (vas.length > PANIC_VAS_MAX) throw new RangeError(`at most ${PANIC_VAS_MAX} panic entry points`);
    for (let i = 0; i < PANIC_VAS_MAX; i++) this.i64[this.v + V_PANIC_VA + i] = i < vas.length ? BigInt.asIntN(64, vas[i]) : 0n;
    // The count after the addresses: Atomics are sequentially consistent, so a hart that sees the new count sees them.
    Atomics.store(this.i32, this.g + G_PANIC_WATCH, ((Atomics.load(this.i32, this.g + G_PANIC_WATCH) + 0x100) & ~0xff) | vas.length);
    this.wakeAll();
  }
  /** The watch word (a generation in bits 8.., the count of addresses in bits 0..7); compare with the last one taken. */
  panicWatchWord(): number {
    return Atomics.load(this.i32, this.g + G_PANIC_WATCH);
  }
  panicWatchVas(word: number): bigint[] {
    return Array.from({ length: word & 0xff }, (_, i) => BigInt.asUintN(64, this.i64[this.v + V_PANIC_VA + i]));
  }
  /** The VM idles: each hart's translator batches (Jit.idle), as the device thread's would. */
  setJitIdle(on: boolean): void {
    Atomics.store(this.i32, this.g + G_JIT_IDLE, on ? 1 : 0);
  }
  jitIdle(): boolean {
    return Atomics.load(this.i32, this.g + G_JIT_IDLE) !== 0;
  }
  /** The idle VM drops its translations: every hart drops its own at its next safe point. */
  requestJitDrop(): void {
    Atomics.add(this.i32, this.g + G_JIT_DROP, 1);
    this.wakeAll();
  }
  jitDropWord(): number {
    return Atomics.load(this.i32, this.g + G_JIT_DROP);
  }
  /** Hart h's translation modules now, and how many times it dropped them all (written by its thread). */
  setJitCounts(h: number, modules: number, drops: number): void {
    Atomics.store(this.i32, this.w(h, W_MODULES), modules);
    Atomics.store(this.i32, this.w(h, W_DROPS), drops);
  }
  /** Hart h's loop counters (written by its thread): see HartLoopCounts. */
  setLoopCounts(h: number, c: HartLoopCounts): void {
    Atomics.store(this.i32, this.w(h, W_SLICES), c.slices | 0);
    Atomics.store(this.i32, this.w(h, W_SLEEPS), c.sleeps | 0);
    Atomics.store(this.i32, this.w(h, W_TRANSLATIONS), c.translations | 0);
    Atomics.store(this.i32, this.w(h, W_MODULES_MADE), c.modules | 0);
    Atomics.store(this.i32, this.w(h, W_EMPTY_WAKES), c.emptyWakes | 0);
    Atomics.store(this.i32, this.w(h, W_FENCES_SKIPPED), c.fencesSkipped | 0);
    Atomics.store(this.i32, this.w(h, W_PAUSES), c.pauses | 0);
    Atomics.store(this.i32, this.w(h, W_SHARED), c.shared | 0);
    Atomics.store(this.i32, this.w(h, W_SHARED_BLOCKS), c.sharedBlocks | 0);
    Atomics.store(this.i64, this.q(h, Q_JIT_US), BigInt(Math.round(c.jitUs)));
    Atomics.store(this.i64, this.q(h, Q_SLEEP_US), BigInt(Math.round(c.sleepUs)));
    Atomics.store(this.i64, this.q(h, Q_FENCE_WAIT_US), BigInt(Math.round(c.fenceWaitUs)));
    Atomics.store(this.i64, this.q(h, Q_DEVICE_US), BigInt(Math.round(c.deviceUs)));
  }
  loopCounts(h: number): HartLoopCounts {
    const g = (i: number) => Atomics.load(this.i32, this.w(h, i)) >>> 0;
    return { slices: g(W_SLICES), sleeps: g(W_SLEEPS), emptyWakes: g(W_EMPTY_WAKES), fencesSkipped: g(W_FENCES_SKIPPED), pauses: g(W_PAUSES), translations: g(W_TRANSLATIONS), modules: g(W_MODULES_MADE), jitUs: Number(Atomics.load(this.i64, this.q(h, Q_JIT_US))),
      sleepUs: Number(Atomics.load(this.i64, this.q(h, Q_SLEEP_US))), fenceWaitUs: Number(Atomics.load(this.i64, this.q(h, Q_FENCE_WAIT_US))), deviceUs: Number(Atomics.load(this.i64, this.q(h, Q_DEVICE_US))),
      shared: g(W_SHARED), sharedBlocks: g(W_SHARED_BLOCKS) };
  }
  jitModules(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_MODULES));
  }
  jitDrops(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_DROPS));
  }
  /** The guest asked for a reset or power-off through SBI on a hart thread (its harts then stop). */
  noteReset(): void {
    Atomics.store(this.i32, this.g + G_RESET, 1);
  }
  resetAsked(): boolean {
    return Atomics.load(this.i32, this.g + G_RESET) !== 0;
  }

  // ---- the scheduler's credit ----

  /**
   * The daemon's credit as a limit on the sum of the harts' counts (null: none).
   * A hart checks it at each safe point and waits (WHERE_CREDIT) once the sum
   * reached it; a hart waiting so is woken by a new limit. The limit is stored
   * before the where words are read, and a hart sets its where word before it
   * reads the limit, so one of the two always sees the other (no lost wakeup).
   */
  setCreditLimit(limit: bigint | null): void {
    const v = limit === null ? -1n : limit < 0n ? 0n : limit;
    if (Atomics.load(this.i64, this.v + V_CREDIT) === v) return;
    Atomics.store(this.i64, this.v + V_CREDIT, v);
    for (let h = 0; h < this.harts; h++) {
      if (this.where(h) !== WHERE_CREDIT) continue;
      // Not wake(): a running hart need not leave its slice for this.
      Atomics.add(this.i32, this.w(h, W_WAKE), 1);
      Atomics.notify(this.i32, this.w(h, W_WAKE));
    }
  }
  /** Instructions the harts may still run together before they wait for credit, or null without a limit. */
  creditLeft(): bigint | null {
    const v = Atomics.load(this.i64, this.v + V_CREDIT);
    return v < 0n ? null : v - this.totalInstret();
  }
  /** Ring the device thread (a hart ran out of credit: the VM's state and count should be published). */
  ringDevice(): void {
    if (!this.deviceBell) return;
    Atomics.add(this.deviceBell.words, this.deviceBell.index, 1);
    Atomics.notify(this.deviceBell.words, this.deviceBell.index);
  }

  // ---- where each hart is (written by the hart's own thread; read for the hang dump) ----

  setWhere(h: number, where: number): void {
    Atomics.store(this.i32, this.w(h, W_WHERE), where);
  }
  where(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_WHERE));
  }
  /** At a safe point: the run's exit reason and the hart's pc, privilege and interrupt state. */
  noteSafePoint(h: number, s: Omit<HartSnapshotWords, 'where' | 'sleepMs'>): void {
    Atomics.store(this.i32, this.w(h, W_EXIT), s.exit);
    Atomics.store(this.i32, this.w(h, W_PRIV), s.priv);
    this.i64[this.q(h, Q_PC)] = BigInt.asIntN(64, s.pc);
    this.i64[this.q(h, Q_MIP)] = BigInt.asIntN(64, s.mip);
    this.i64[this.q(h, Q_MIE)] = BigInt.asIntN(64, s.mie);
    this.i64[this.q(h, Q_MSTATUS)] = BigInt.asIntN(64, s.mstatus);
    this.i64[this.q(h, Q_STIMECMP)] = BigInt.asIntN(64, s.stimecmp);
    this.i64[this.q(h, Q_TIME)] = BigInt.asIntN(64, s.time);
  }
  noteSleep(h: number, ms: number): void {
    this.i64[this.q(h, Q_SLEEP_MS)] = BigInt(Math.round(ms));
  }
  snapshotWords(h: number): HartSnapshotWords {
    const u = (i: number) => BigInt.asUintN(64, this.i64[this.q(h, i)]);
    return {
      where: this.where(h), exit: Atomics.load(this.i32, this.w(h, W_EXIT)), priv: Atomics.load(this.i32, this.w(h, W_PRIV)),
      pc: u(Q_PC), mip: u(Q_MIP), mie: u(Q_MIE), mstatus: u(Q_MSTATUS), stimecmp: u(Q_STIMECMP), time: u(Q_TIME), sleepMs: Number(this.i64[this.q(h, Q_SLEEP_MS)]),
    };
  }
  /** The raw words of hart h (wake, lines, IPI, fence request/ack/kind, parked, HSM) for the hang dump. */
  rawWords(h: number): Record<string, number> {
    const g = (i: number) => Atomics.load(this.i32, this.w(h, i));
    return {
      hsm: g(W_HSM), wake: g(W_WAKE), lines: g(W_LINES), ipi: g(W_IPI), fenceReq: g(W_FENCE_REQ), fenceAck: g(W_FENCE_ACK), fenceKind: g(W_FENCE_KIND),
      waiting: g(W_WAITING), parked: g(W_PARKED), modules: g(W_MODULES), drops: g(W_DROPS),
    };
  }
  /** The VM's words (hold, end, failed, panic, retired-code generation, reset). */
  vmWords(): Record<string, number> {
    const g = (i: number) => Atomics.load(this.i32, this.g + i);
    return {
      hold: g(G_HOLD), end: g(G_EXIT), failed: g(G_FAILED), panic: g(G_PANIC), codeGen: g(G_CODE_GEN), reset: g(G_RESET), jitIdle: g(G_JIT_IDLE), jitDrop: g(G_JIT_DROP),
      credit: Number(Atomics.load(this.i64, this.v + V_CREDIT)),
    };
  }

  // ---- counters (written by the hart's own thread) ----

  setWaiting(h: number, on: boolean): void {
    Atomics.store(this.i32, this.w(h, W_WAITING), on ? 1 : 0);
  }
  waiting(h: number): boolean {
    return Atomics.load(this.i32, this.w(h, W_WAITING)) !== 0;
  }
  countWfi(h: number): void {
    Atomics.add(this.i32, this.w(h, W_WFIS), 1);
  }
  wfis(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_WFIS));
  }
  ipis(h: number): number {
    return Atomics.load(this.i32, this.w(h, W_IPIS));
  }
  setInstret(h: number, n: bigint, interrupts: bigint): void {
    Atomics.store(this.i64, this.q(h, Q_INSTRET), BigInt.asIntN(64, n));
    Atomics.store(this.i64, this.q(h, Q_INTERRUPTS), BigInt.asIntN(64, interrupts));
  }
  /** Host time hart h spent running guest code (its thread's share of the VM's busy time). */
  addBusyUs(h: number, us: number): void {
    Atomics.add(this.i64, this.q(h, Q_BUSY_US), BigInt(Math.round(us)));
  }
  busyUs(h: number): number {
    return Number(Atomics.load(this.i64, this.q(h, Q_BUSY_US)));
  }
  instret(h: number): bigint {
    return BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_INSTRET)));
  }
  interrupts(h: number): bigint {
    return BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_INTERRUPTS)));
  }
  totalInstret(): bigint {
    let n = 0n;
    for (let h = 0; h < this.harts; h++) n += this.instret(h);
    return n;
  }
}
