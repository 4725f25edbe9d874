// MMIO from a hart that runs on a thread of its own (SMP phase 2, stage 3
// groundwork; docs/smp.md): the devices stay on the VM's worker thread, and a
// hart thread's load or store to a device is a request in a slot of shared
// memory, answered by the device thread. The core's MMIO imports are
// synchronous, so the hart thread waits for the answer (Atomics.wait); the
// device thread serves pending requests between its own slices and is woken
// from an idle sleep through a doorbell word.
//
// One slot per hart (32 bytes): i32 state, kind, size, fault; u64 address;
// u64 value. A slot is POSTED by its hart, ANSWERED by the device thread and
// taken back to IDLE by the hart, so each side writes only in its own turn.

const IDLE = 0;
const POSTED = 1;
const ANSWERED = 2;
// After the slots, one more word: set when the device thread is gone, so no hart waits forever.
const SLOT_BYTES = 32;
const I32_PER_SLOT = SLOT_BYTES / 4;
const KIND_READ = 0;
const KIND_WRITE = 1;
// u64 words of a slot, after its four i32 words.
const ADDR = 2;
const VALUE = 3;

export const MMIO_MAILBOX_HARTS_MAX = 8;

/** The shared memory of a mailbox for `harts` harts (one slot each, then the closed word). */
export function createMmioMailbox(harts: number): SharedArrayBuffer {
  if (!Number.isInteger(harts) || harts < 1 || harts > MMIO_MAILBOX_HARTS_MAX) {
    throw new Error(`mmio mailbox: hart count ${harts} is outside 1..${MMIO_MAILBOX_HARTS_MAX}`);
  }
  return new SharedArrayBuffer(harts * SLOT_BYTES + 8);
}

function slotCount(sab: SharedArrayBuffer): number {
  return Math.floor((sab.byteLength - 8) / SLOT_BYTES);
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

/** The hart thread's side: blocking reads and writes through its slot. */
export class MmioClient {
  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;
  private readonly at: number;

  constructor(sab: SharedArrayBuffer, hart: number, private readonly doorbell?: Doorbell, private readonly waitMs = 1000) {
    if (!Number.isInteger(hart) || hart < 0 || hart >= slotCount(sab)) throw new Error(`mmio mailbox: no slot for hart ${hart}`);
    this.i32 = new Int32Array(sab);
    this.u64 = new BigUint64Array(sab);
    this.at = hart * I32_PER_SLOT;
  }

  read(addr: number, size: number): MmioAnswer {
    return this.call(KIND_READ, addr, size, 0);
  }

  write(addr: number, size: number, value: number): boolean {
    return this.call(KIND_WRITE, addr, size, value).fault;
  }

  private call(kind: number, addr: number, size: number, value: number): MmioAnswer {
    const i = this.at;
    const closedAt = slotCount(this.i32.buffer as SharedArrayBuffer) * I32_PER_SLOT;
    this.i32[i + 1] = kind;
    this.i32[i + 2] = size;
    this.i32[i + 3] = 0;
    this.u64[(i >> 1) + ADDR] = BigInt.asUintN(64, BigInt(addr));
    this.u64[(i >> 1) + VALUE] = BigInt.asUintN(64, BigInt(Math.trunc(value)));
    // The store of the state publishes the fields above (Atomics are sequentially consistent).
    Atomics.store(this.i32, i, POSTED);
    if (this.doorbell) {
      Atomics.add(this.doorbell.words, this.doorbell.index, 1);
      Atomics.notify(this.doorbell.words, this.doorbell.index);
    }
    while (Atomics.load(this.i32, i) !== ANSWERED) {
      if (Atomics.load(this.i32, closedAt) !== 0) throw new Error('mmio mailbox: the device thread is gone');
      Atomics.wait(this.i32, i, POSTED, this.waitMs);
    }
    const answer = { value: Number(this.u64[(i >> 1) + VALUE]), fault: this.i32[i + 3] !== 0 };
    Atomics.store(this.i32, i, IDLE);
    return answer;
  }
}

/** The device side of an access: `value` is what a write stores. */
export type MmioHandler = (write: boolean, addr: number, size: number, value: number) => MmioAnswer;

/** The device thread's side: answers whatever the harts posted. */
export class MmioServer {
  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;
  private readonly slotsCount: number;
  /** Requests answered so far (statistics). */
  served = 0;

  constructor(sab: SharedArrayBuffer, private readonly handler: MmioHandler) {
    this.i32 = new Int32Array(sab);
    this.u64 = new BigUint64Array(sab);
    this.slotsCount = slotCount(sab);
  }

  /** Answer every posted request once; returns how many there were. */
  serve(): number {
    let n = 0;
    for (let h = 0; h < this.slotsCount; h++) {
      const i = h * I32_PER_SLOT;
      if (Atomics.load(this.i32, i) !== POSTED) continue;
      const kind = this.i32[i + 1];
      const size = this.i32[i + 2];
      const addr = Number(this.u64[(i >> 1) + ADDR]);
      const value = Number(this.u64[(i >> 1) + VALUE]);
      let answer: MmioAnswer;
      // A request is as the guest made it: a size or kind no hart should post is a fault, not a throw.
      if ((kind !== KIND_READ && kind !== KIND_WRITE) || ![1, 2, 4, 8].includes(size)) {
        answer = { value: 0, fault: true };
      } else {
        try {
          answer = this.handler(kind === KIND_WRITE, addr, size, value);
        } catch {
          answer = { value: 0, fault: true };
        }
      }
      this.u64[(i >> 1) + VALUE] = BigInt.asUintN(64, BigInt(Math.trunc(answer.value)));
      this.i32[i + 3] = answer.fault ? 1 : 0;
      Atomics.store(this.i32, i, ANSWERED);
      Atomics.notify(this.i32, i);
      n++;
    }
    this.served += n;
    return n;
  }

  /** Each slot's state (0 idle, 1 posted, 2 answered) and address, for the hang dump. */
  slots(): { state: number; addr: number }[] {
    return Array.from({ length: this.slotsCount }, (_, h) => {
      const i = h * I32_PER_SLOT;
      return { state: Atomics.load(this.i32, i), addr: Number(this.u64[(i >> 1) + ADDR]) };
    });
  }

  /** The device thread stops: every hart waiting now or later gets an error instead of waiting forever. */
  close(): void {
    Atomics.store(this.i32, this.slotsCount * I32_PER_SLOT, 1);
    for (let h = 0; h < this.slotsCount; h++) Atomics.notify(this.i32, h * I32_PER_SLOT);
  }
}
