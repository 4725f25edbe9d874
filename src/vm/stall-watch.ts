// Hang detection for kernels whose panic() the VMM cannot watch (no
// System.map). A panicked kernel ends in a loop in S-mode: no program runs and
// the hart never idles. So a guest that, for a long stretch of running time,
// neither takes a trap from U-mode (every program that runs longer than a
// timer tick is interrupted, and every system call traps) nor waits in WFI is
// failed as hung. A program cannot cause this: while it runs the kernel's
// timer tick interrupts it from U-mode, and a system call lasts far shorter
// than the timeout. The watch arms only once the guest has taken an
// interrupt: bare-metal programs that compute without interrupts are not
// kernels in trouble (nor are early-boot panics before the timer runs,
// which only the panic breakpoint sees).

/** Default stall timeout: running time without a trap from U-mode or a WFI before the VM is failed. */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/**
 * A stall must also span at least this many guest instructions, and this
 * many per second of the timeout, so a host too loaded to run the guest does
 * not make one.
 */
const MIN_STALL_INSNS = 1_000_000_000;
const MIN_INSNS_PER_SECOND = 10_000_000;
/**
 * Until the first program runs the kernel is booting: the default guest's
 * kernel runs 1.3e9 instructions from its entry to /init without a WFI. A
 * stall before that must last BOOT_FACTOR times as long and span
 * MIN_BOOT_STALL_INSNS, so a slow boot is never taken for a hang.
 */
const BOOT_FACTOR = 4;
const MIN_BOOT_STALL_INSNS = 5_000_000_000;

export class StallWatch {
  private lastUserTraps = -1n;
  private stalledMs = 0;
  private stalledInsns = 0n;
  private lastInstret = 0n;

  /** timeoutMs of running time; 0 turns the watch off. */
  constructor(private readonly timeoutMs: number) {}

  /**
   * Account for the time since the last call: `busyMs` of running guest code,
   * the counts of traps from U-mode and of interrupts and instret now, and
   * whether a WFI was seen. Returns a failure reason once the guest has stalled for the
   * timeout, else null.
   */
  update(userTraps: bigint, interrupts: bigint, instret: bigint, sawWfi: boolean, busyMs: number): string | null {
    const ran = instret - this.lastInstret;
    this.lastInstret = instret;
    if (this.timeoutMs <= 0) return null;
    const booting = userTraps === 0n;
    if (sawWfi || userTraps !== this.lastUserTraps || interrupts === 0n) {
      this.lastUserTraps = userTraps;
      this.stalledMs = 0;
      this.stalledInsns = 0n;
      return null;
    }
    this.stalledMs += busyMs;
    this.stalledInsns += ran;
    const factor = booting ? BOOT_FACTOR : 1;
    const minInsns = BigInt(Math.max(booting ? MIN_BOOT_STALL_INSNS : MIN_STALL_INSNS, Math.ceil((factor * this.timeoutMs / 1000) * MIN_INSNS_PER_SECOND)));
    if (this.stalledMs >= factor * this.timeoutMs && this.stalledInsns >= minInsns) {
      return `hung: no program ran and the CPU never idled for ${Math.round(this.stalledMs / 1000)} s of running time (${this.stalledInsns} instructions)`;
    }
    return null;
  }
}
