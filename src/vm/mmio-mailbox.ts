// MMIO from a hart that runs on a thread of its own (SMP phase 2; docs/smp.md):
// the devices stay on the VM's worker thread, and a hart thread's load or
// store to a device is a request in shared memory, answered by the device
// thread. The core's MMIO imports are synchronous, so a read waits for its
// answer; the device thread serves requests between its own work and is woken
// from an idle sleep through a doorbell word.
//
// Requests from all harts go through one ring, in the order their tickets were
// taken (a counter every poster increments), and the device thread serves them
// strictly in that order. So requests are served in an order consistent with
// each hart's program order and with the order the harts synchronised in: a
// hart that takes a lock after another released it gets a later ticket for
// everything it posts than anything the other posted before its release.
//
// A write to an address the device thread has declared safe to post (a
// device's range: a mapped device never faults, see MmioDevice) does not wait
// for its answer: the hart goes on, and its next read (which waits) finds the
// write done, since the ring is served in order. Anything else (reads, host
// calls, writes that may fault) waits for its answer, so a fault is raised on
// the access that caused it.
//
// Waiting: after serving, the device thread polls the ring for a short
// bounded window (console output comes in bursts: a status read and a data
// write per character) before it goes back to its loop and sleep; a hart
// polls its answer word for a bounded time before it sleeps on it
// (Atomics.wait). A poll only pays when both threads have a core: on a
// host without one to spare it keeps the other thread off the core it needs.
// So both sides back off: after a poll that found nothing, the next ones are
// skipped (exponentially more, up to a bound). An idle VM makes no device
// accesses and so never polls.

/** A request waits for its answer, or (a posted write) does not. */
const KIND_READ = 0;
const KIND_WRITE = 1;
const KIND_POSTED = 2;
/** The request kinds, for MmioClient.post. */
export const MMIO_KIND = { read: KIND_READ, write: KIND_WRITE, posted: KIND_POSTED } as const;

export const MMIO_MAILBOX_HARTS_MAX = 8;
/** Requests the ring holds (a power of two): posted writes beyond it wait for room. */
export const MMIO_RING_ENTRIES = 64;
/** Ranges the device thread may declare safe to post writes to. */
export const MMIO_POSTABLE_RANGES_MAX = 32;

// Layout: i32 indices of the words, then byte offsets of the areas. Words that different threads write sit on separate 64-byte lines.
const TAIL = 0; // i32: tickets taken (every poster)
const HEAD = 16; // i32: requests served (the device thread)
const POSTED_FAULTS = 17; // i32: posted writes whose device threw (the device thread)
const CLOSED = 32; // i32: the device thread is gone
const POLLING = 33; // i32: the device thread is polling the ring now
const HARTS = 34; // i32: the number of answer slots
const RANGE_COUNT = 35; // i32: postable ranges published
const RANGES_BYTE = 192; // f64 pairs [base, end)
const ANSWERS_BYTE = RANGES_BYTE + MMIO_POSTABLE_RANGES_MAX * 16;
const ANSWER_BYTES = 64; // per hart: i32 seq (ticket + 1 of the last answer), i32 fault, f64 value
const RING_BYTE = ANSWERS_BYTE + MMIO_MAILBOX_HARTS_MAX * ANSWER_BYTES;
const ENTRY_BYTES = 32; // i32 seq (ticket + 1 once published), hart, kind, size; f64 address, value
const TOTAL_BYTES = RING_BYTE + MMIO_RING_ENTRIES * ENTRY_BYTES;

/** How long a hart polls for its answer before it sleeps (us): about two thread wake-ups. */
export const CLIENT_SPIN_US = 20;
/** After a poll in vain, a hart skips polling for up to this many accesses (unless the device thread polls). */
export const CLIENT_SKIP_MAX = 128;
/** After serving, the device thread polls on while requests keep coming this often (us)... */
export const SERVER_IDLE_US = 50;
/** ...but for at most this long in one go (us), so its own loop (commands, input, output) still runs. */
export const SERVER_POLL_MAX_US = 2000;

/** After a poll in vain, the device thread skips up to this many polls. */
export const SERVER_SKIP_MAX = 64;

/** The shared memory of a mailbox for `harts` harts. */
export function createMmioMailbox(harts: number): SharedArrayBuffer {
  if (!Number.isInteger(harts) || harts < 1 || harts > MMIO_MAILBOX_HARTS_MAX) {
    throw new Error(`mmio mailbox: hart count ${harts} is outside 1..${MMIO_MAILBOX_HARTS_MAX}`);
  }
  const sab = new SharedArrayBuffer(TOTAL_BYTES);
  new Int32Array(sab)[HARTS] = harts;
  return sab;
}

/** A word (Int32Array and index) the device thread sleeps on when idle: a request bumps it and notifies. */
export interface Doorbell {
  words: Int32Array;
  index: number;
}

/** What a device access gives back: the value read (0 for a write) and whether no device answered. */
export interface MmioAnswer {
  value: number;
  fault: boolean;
}

const answerI32 = (h: number) => (ANSWERS_BYTE + h * ANSWER_BYTES) >> 2;
const answerF64 = (h: number) => (ANSWERS_BYTE + h * ANSWER_BYTES + 8) >> 3;
const entryI32 = (t: number) => (RING_BYTE + (t & (MMIO_RING_ENTRIES - 1)) * ENTRY_BYTES) >> 2;
const entryF64 = (t: number) => (RING_BYTE + (t & (MMIO_RING_ENTRIES - 1)) * ENTRY_BYTES + 16) >> 3;

/** Client statistics: requests by kind. */
export interface MmioClientCounts {
  reads: number;
  writes: number;
  posted: number;
  /** Answers that came while polling for them, and polls in vain (then the hart slept). */
  spinHits: number;
  spinMisses: number;
}

/** The hart thread's side: reads and writes through the ring and its answer slot. */
export class MmioClient {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  readonly counts: MmioClientCounts = { reads: 0, writes: 0, posted: 0, spinHits: 0, spinMisses: 0 };
  /** Accesses that skip polling for their answer now, and after the next poll in vain. */
  private skip = 0;
  private skipNext = 0;

  constructor(sab: SharedArrayBuffer, private readonly hart: number, private readonly doorbell?: Doorbell, private readonly waitMs = 1000,
    private readonly spinUs = CLIENT_SPIN_US) {
    this.i32 = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    if (!Number.isInteger(hart) || hart < 0 || hart >= this.i32[HARTS]) throw new Error(`mmio mailbox: no slot for hart ${hart}`);
  }

  read(addr: number, size: number): MmioAnswer {
    this.counts.reads++;
    return this.answer(this.post(KIND_READ, addr, size, 0));
  }

  /** A write; true when it faulted. A write the device thread declared postable returns at once (never a fault). */
  write(addr: number, size: number, value: number): boolean {
    if (this.postable(addr, size)) {
      this.counts.posted++;
      this.post(KIND_POSTED, addr, size, value);
      return false;
    }
    this.counts.writes++;
    return this.answer(this.post(KIND_WRITE, addr, size, value)).fault;
  }

  /** Whether a write of `size` bytes at `addr` lies in a range the device thread declared postable. */
  postable(addr: number, size: number): boolean {
    if (size !== 1 && size !== 2 && size !== 4) return false;
    const n = Atomics.load(this.i32, RANGE_COUNT);
    const end = addr + size;
    for (let r = 0; r < n; r++) {
      const at = (RANGES_BYTE >> 3) + 2 * r;
      if (addr >= this.f64[at] && end <= this.f64[at + 1]) return true;
    }
    return false;
  }

  /**
   * Put a request in the ring (the low-level half of read/write; tests use it
   * to post what no hart would). Returns its ticket; `answer` waits for it.
   */
  post(kind: number, addr: number, size: number, value: number): number {
    const t = Atomics.add(this.i32, TAIL, 1);
    // Room: the entry's previous request (ticket t - RING) must have been served.
    if (((t - Atomics.load(this.i32, HEAD)) | 0) >= MMIO_RING_ENTRIES) this.waitForRoom(t);
    const e = entryI32(t);
    this.i32[e + 1] = this.hart;
    this.i32[e + 2] = kind;
    this.i32[e + 3] = size;
    const f = entryF64(t);
    this.f64[f] = addr;
    this.f64[f + 1] = Math.trunc(value);
    // The store of the sequence publishes the fields above (Atomics are sequentially consistent).
    Atomics.store(this.i32, e, (t + 1) | 0);
    if (this.doorbell) {
      Atomics.add(this.doorbell.words, this.doorbell.index, 1);
      Atomics.notify(this.doorbell.words, this.doorbell.index);
    }
    return t;
  }

  private waitForRoom(t: number): void {
    for (;;) {
      const head = Atomics.load(this.i32, HEAD);
      if (((t - head) | 0) < MMIO_RING_ENTRIES) return;
      this.checkOpen();
      Atomics.wait(this.i32, HEAD, head, this.waitMs);
    }
  }

  private checkOpen(): void {
    if (Atomics.load(this.i32, CLOSED) !== 0) throw new Error('mmio mailbox: the device thread is gone');
  }

  /** Wait for the answer to ticket `t` (this hart's latest waiting request). */
  answer(t: number): MmioAnswer {
    const a = answerI32(this.hart);
    const want = (t + 1) | 0;
    if (Atomics.load(this.i32, a) !== want) {
      if (!this.spun(a, want)) {
        for (;;) {
          const seen = Atomics.load(this.i32, a);
          if (seen === want) break;
          this.checkOpen();
          Atomics.wait(this.i32, a, seen, this.waitMs);
        }
      }
    }
    return { value: this.f64[answerF64(this.hart)], fault: this.i32[a + 1] !== 0 };
  }

  /**
   * Poll for the answer a little before sleeping, while that pays: the device
   * thread answers in about a microsecond while it polls the ring itself, and
   * in several when it has to be woken but has a core to run on. On a host
   * with no core to spare, a poll only keeps the device thread off the core
   * it needs: after a poll in vain the next ones are skipped (1, 2, 4, ... up
   * to CLIENT_SKIP_MAX accesses) unless the device thread is polling.
   */
  private spun(a: number, want: number): boolean {
    if (this.spinUs <= 0) return false;
    if (this.skip > 0 && Atomics.load(this.i32, POLLING) === 0) {
      this.skip--;
      return false;
    }
    const until = performance.now() + this.spinUs / 1000;
    let spins = 0;
    while (Atomics.load(this.i32, a) !== want) {
      if ((++spins & 15) === 0 && performance.now() > until) {
        this.skipNext = Math.min(CLIENT_SKIP_MAX, this.skipNext * 2 || 1);
        this.skip = this.skipNext;
        this.counts.spinMisses++;
        return false;
      }
    }
    this.skipNext = 0;
    this.counts.spinHits++;
    return true;
  }
}

/** The device side of an access: `value` is what a write stores. */
export type MmioHandler = (write: boolean, addr: number, size: number, value: number) => MmioAnswer;

/** The device thread's side: serves the ring in ticket order. */
export class MmioServer {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly harts: number;
  private head = 0;
  /** Requests answered so far (statistics), and of those posted writes. */
  served = 0;
  posted = 0;
  /** Host time spent polling for requests after serving (us), polls that served something and polls in vain (statistics). */
  pollUs = 0;
  pollHits = 0;
  pollMisses = 0;
  private pollSkip = 0;
  private pollSkipNext = 0;

  constructor(sab: SharedArrayBuffer, private readonly handler: MmioHandler) {
    this.i32 = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    this.harts = this.i32[HARTS];
    this.head = Atomics.load(this.i32, HEAD);
  }

  /**
   * Declare writes to these [base, end) ranges safe to post: the handler
   * never faults there (a mapped device ignores what it does not implement).
   */
  setPostable(ranges: ReadonlyArray<{ base: number; size: number }>): void {
    if (ranges.length > MMIO_POSTABLE_RANGES_MAX) throw new Error(`mmio mailbox: more than ${MMIO_POSTABLE_RANGES_MAX} postable ranges`);
    Atomics.store(this.i32, RANGE_COUNT, 0);
    ranges.forEach((r, i) => {
      this.f64[(RANGES_BYTE >> 3) + 2 * i] = r.base;
      this.f64[(RANGES_BYTE >> 3) + 2 * i + 1] = r.base + r.size;
    });
    Atomics.store(this.i32, RANGE_COUNT, ranges.length);
  }

  /** Requests posted and not served yet (a hart that took a ticket may still be filling its entry). */
  pending(): number {
    return (Atomics.load(this.i32, TAIL) - this.head) | 0;
  }

  /** Posted writes whose device threw (a device bug: nobody was waiting to take the fault). */
  get postedFaults(): number {
    return Atomics.load(this.i32, POSTED_FAULTS);
  }

  /** Serve the requests published so far, in ticket order; returns how many there were. */
  serve(): number {
    let n = 0;
    for (;;) {
      const t = this.head;
      const e = entryI32(t);
      if (Atomics.load(this.i32, e) !== ((t + 1) | 0)) break;
      const hart = this.i32[e + 1];
      const kind = this.i32[e + 2];
      const size = this.i32[e + 3];
      const f = entryF64(t);
      const addr = this.f64[f];
      const value = this.f64[f + 1];
      let answer: MmioAnswer;
      // A request is as the guest made it: a size or kind no hart should post is a fault, not a throw.
      if ((kind !== KIND_READ && kind !== KIND_WRITE && kind !== KIND_POSTED) || (size !== 1 && size !== 2 && size !== 4 && size !== 8)) {
        answer = { value: 0, fault: true };
      } else {
        try {
          answer = this.handler(kind !== KIND_READ, addr, size, value);
        } catch {
          answer = { value: 0, fault: true };
        }
      }
      this.head = (t + 1) | 0;
      if (kind === KIND_POSTED) {
        this.posted++;
        if (answer.fault) Atomics.add(this.i32, POSTED_FAULTS, 1);
        Atomics.store(this.i32, HEAD, this.head);
      } else if (hart >= 0 && hart < this.harts) {
        const a = answerI32(hart);
        this.f64[answerF64(hart)] = answer.value;
        this.i32[a + 1] = answer.fault ? 1 : 0;
        Atomics.store(this.i32, HEAD, this.head);
        Atomics.store(this.i32, a, (t + 1) | 0);
        Atomics.notify(this.i32, a);
      } else {
        Atomics.store(this.i32, HEAD, this.head);
      }
      n++;
    }
    if (n > 0) {
      this.served += n;
      // A poster may wait for room in a full ring.
      Atomics.notify(this.i32, HEAD);
    }
    return n;
  }

  /**
   * Serve on while requests keep coming: poll the ring until none came for
   * `idleUs`, or `maxUs` passed. Returns how many were served. The harts see
   * the polling flag (statistics, the hang dump).
   */
  poll(idleUs = SERVER_IDLE_US, maxUs = SERVER_POLL_MAX_US): number {
    if (this.pollSkip > 0) {
      this.pollSkip--;
      return 0;
    }
    const start = performance.now();
    let last = start;
    let now = start;
    let n = 0;
    Atomics.store(this.i32, POLLING, 1);
    for (let spins = 0; ; spins++) {
      const got = this.serve();
      if (got > 0) {
        n += got;
        last = now = performance.now();
      } else if ((spins & 31) === 0) {
        now = performance.now();
        if (now - last > idleUs / 1000) break;
      }
      if (now - start > maxUs / 1000) break;
    }
    Atomics.store(this.i32, POLLING, 0);
    this.pollUs += (performance.now() - start) * 1000;
    if (n > 0) {
      this.pollHits++;
      this.pollSkipNext = 0;
    } else {
      // In vain: the harts were not quick (asleep, or no core for them). Skip the next 1, 2, 4, ... up to SERVER_SKIP_MAX.
      this.pollMisses++;
      this.pollSkipNext = Math.min(SERVER_SKIP_MAX, this.pollSkipNext * 2 || 1);
      this.pollSkip = this.pollSkipNext;
    }
    return n;
  }

  /** Each hart's oldest unserved request (state 1, its address) or none (state 0), for the hang dump. */
  slots(): { state: number; addr: number }[] {
    const out = Array.from({ length: this.harts }, () => ({ state: 0, addr: 0 }));
    const tail = Atomics.load(this.i32, TAIL);
    for (let t = this.head; ((tail - t) | 0) > 0 && ((t - this.head) | 0) < MMIO_RING_ENTRIES; t = (t + 1) | 0) {
      const e = entryI32(t);
      if (Atomics.load(this.i32, e) !== ((t + 1) | 0)) continue;
      const h = this.i32[e + 1];
      if (h >= 0 && h < this.harts && out[h].state === 0) out[h] = { state: 1, addr: this.f64[entryF64(t)] };
    }
    return out;
  }

  /** The device thread stops: every hart waiting now or later gets an error instead of waiting forever. */
  close(): void {
    Atomics.store(this.i32, CLOSED, 1);
    for (let h = 0; h < this.harts; h++) Atomics.notify(this.i32, answerI32(h));
    Atomics.notify(this.i32, HEAD);
  }
}
