// Architectural state of the hart that is not a register file: pc, privilege,
// CSRs. Kept in wasm globals (fast in the interpreter loop); exported
// accessors in index.ts let the host read and set them for boot, SBI and snapshots.

export const PRV_U: u32 = 0;
export const PRV_S: u32 = 1;
export const PRV_M: u32 = 3;

// mstatus bits
export const MS_SIE: u64 = 1 << 1;
export const MS_MIE: u64 = 1 << 3;
export const MS_SPIE: u64 = 1 << 5;
export const MS_UBE: u64 = 1 << 6;
export const MS_MPIE: u64 = 1 << 7;
export const MS_SPP: u64 = 1 << 8;
export const MS_MPP_SHIFT: u64 = 11;
export const MS_MPP: u64 = 3 << 11;
export const MS_FS_SHIFT: u64 = 13;
export const MS_FS: u64 = 3 << 13;
export const MS_MPRV: u64 = 1 << 17;
export const MS_SUM: u64 = 1 << 18;
export const MS_MXR: u64 = 1 << 19;
export const MS_TVM: u64 = 1 << 20;
export const MS_TW: u64 = 1 << 21;
export const MS_TSR: u64 = 1 << 22;
export const MS_UXL: u64 = 3 << 32;
export const MS_SXL: u64 = 3 << 34;
export const MS_SD: u64 = 1 << 63;

// interrupt bits (mip/mie)
export const IRQ_SSI: u32 = 1;
export const IRQ_MSI: u32 = 3;
export const IRQ_STI: u32 = 5;
export const IRQ_MTI: u32 = 7;
export const IRQ_SEI: u32 = 9;
export const IRQ_MEI: u32 = 11;
export const MIP_SSIP: u64 = 1 << 1;
export const MIP_MSIP: u64 = 1 << 3;
export const MIP_STIP: u64 = 1 << 5;
export const MIP_MTIP: u64 = 1 << 7;
export const MIP_SEIP: u64 = 1 << 9;
export const MIP_MEIP: u64 = 1 << 11;
export const S_INTERRUPTS: u64 = MIP_SSIP | MIP_STIP | MIP_SEIP;

// exception causes
export const EXC_INSN_MISALIGNED: u32 = 0;
export const EXC_INSN_ACCESS: u32 = 1;
export const EXC_ILLEGAL: u32 = 2;
export const EXC_BREAKPOINT: u32 = 3;
export const EXC_LOAD_MISALIGNED: u32 = 4;
export const EXC_LOAD_ACCESS: u32 = 5;
export const EXC_STORE_MISALIGNED: u32 = 6;
export const EXC_STORE_ACCESS: u32 = 7;
export const EXC_ECALL_U: u32 = 8;
export const EXC_ECALL_S: u32 = 9;
export const EXC_ECALL_M: u32 = 11;
export const EXC_INSN_PAGE: u32 = 12;
export const EXC_LOAD_PAGE: u32 = 13;
export const EXC_STORE_PAGE: u32 = 15;

export let pc: u64 = 0;
export let priv: u32 = PRV_M;
/** Retired-instruction count (drives deterministic time and budgets; never written by the guest). */
export let instret: u64 = 0;
/** What M-mode writes to minstret and mcycle changed: they read instret plus these. */
export let instretDelta: u64 = 0;
export let cycleDelta: u64 = 0;

export let mstatus: u64 = 0;
export let medeleg: u64 = 0;
export let mideleg: u64 = 0;
export let mie: u64 = 0;
/** Software-writable mip bits (SSIP, STIP without Sstc, SEIP). */
export let mipSw: u64 = 0;
/** Bits driven by devices: MEIP/SEIP (PLIC), MTIP/MSIP (CLINT), STIP (Sstc). */
export let mipHw: u64 = 0;
export let mtvec: u64 = 0;
export let mscratch: u64 = 0;
export let mepc: u64 = 0;
export let mcause: u64 = 0;
export let mtval: u64 = 0;
export let mcounteren: u32 = 0;
export let menvcfg: u64 = 0;
export let stvec: u64 = 0;
export let sscratch: u64 = 0;
export let sepc: u64 = 0;
export let scause: u64 = 0;
export let stval: u64 = 0;
export let scounteren: u32 = 0;
export let senvcfg: u64 = 0;
export let satp: u64 = 0;
export let stimecmp: u64 = 0xffffffffffffffff;
export let mhartid: u64 = 0;

// CLINT state (the CLINT is emulated inside the core: it is on the timer hot path)
export let mtimecmp: u64 = 0xffffffffffffffff;
export let msip: u32 = 0;

/** Time in timebase ticks; set by the host per slice, or derived from instret when deterministic. */
export let timeNow: u64 = 0;
export let deterministic: bool = false;
/** Ticks added while a deterministic guest idled in WFI. */
export let timeSkew: u64 = 0;
/** Instructions per tick in deterministic mode (10 MHz timebase at a nominal 100 MIPS). */
export const DET_INSNS_PER_TICK: u64 = 10;

/** LR/SC reservation (physical address), or all ones when none. */
export let reservation: u64 = 0xffffffffffffffff;
/**
 * What LR read there (sign-extended for LR.W). SC stores with a compare-and-swap
 * against it, so it fails when another hart changed the location in between,
 * whichever thread that hart runs on (an ABA change back is not seen, as in
 * QEMU and RVVM).
 */
export let reservedValue: u64 = 0;
/** False when `reservation` was set without a value (a restored snapshot): the next SC compares with memory as it is then. */
export let reservedValueKnown: bool = false;

/** Encoding of the instruction being executed (for illegal-instruction tval). */
export let curInsnBits: u64 = 0;
/** Set when the current instruction trapped; the loop stops the instruction's side effects. */
export let trapped: bool = false;
/** Set by instructions that change interrupt enables/pending, or by the host: leave the batch. */
export let breakBatch: bool = false;
/** Non-zero: why run() should return to the host. */
export let exitReason: u32 = 0;

/** Bit per privilege (1 << priv): ecall from that mode calls the host hook instead of trapping. */
export let ecallHookMask: u32 = 0;

/** Translate hot code to wasm (the host installs translations between run() calls). */
export let jitEnabled: bool = false;

/** Guest RAM size in bytes (guest physical 0x8000_0000 upwards). */
export let ramSize: u64 = 0;

export const misaValue: u64 =
  (2 << 62) | // MXL = 64
  (1 << 0) | // A
  (1 << 2) | // C
  (1 << 3) | // D
  (1 << 5) | // F
  (1 << 8) | // I
  (1 << 12) | // M
  (1 << 18) | // S
  (1 << 20); // U

@inline export function currentTime(): u64 {
  if (deterministic) return (instret / DET_INSNS_PER_TICK) + timeSkew;
  return timeNow;
}

/** The host's clock in timebase ticks now, or a negative number when the host gives none. */
@external('env', 'hostTime') declare function hostTime(): f64;

/**
 * Time as the guest reads it (the `time` CSR, the CLINT's mtime). In realtime
 * runs that is the host's clock at the read, not at the start of the slice:
 * with the slice's time, code that measures time in a loop saw it stand still
 * for up to 2 million instructions. Linux's jitter entropy source declared the
 * timer too coarse only after about 1.4 billion instructions of hashing (a
 * third of a 1-hart boot), and each udelay() lasted to the end of its slice.
 * Never goes back within a hart (setTime at the next slice takes the same clock).
 */
export function readTime(): u64 {
  if (!deterministic) {
    const t = hostTime();
    if (t >= 0) {
      const v = <u64>t;
      if (v > timeNow) timeNow = v;
    }
  }
  return currentTime();
}
